"use strict";
// Stand-in for the pulumi-resource-command plugin (npm @pulumi/command@1.2.1),
// installed by scripts/install-pulumi.sh because the Go module
// github.com/pulumi/pulumi-command/provider is not served by the Go module proxy
// reachable here (403 for every version). Implements command:local:Command, the
// command:local:run invoke and command:remote:Command with pulumi-command's
// semantics; remote commands go through the system `ssh` client (key in a 0600
// temp file removed after each run; host keys not checked, as pulumi-command
// does without `hostKey`). Other command:remote:* resources are rejected.
const childProcess = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const provider = require("@pulumi/pulumi/provider");

const VERSION = "@COMMAND_VERSION@";
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
const ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const INPUT_KEYS = ["addPreviousOutputInEnv", "archivePaths", "assetPaths", "connection", "create", "delete", "dir",
    "environment", "interpreter", "logging", "stdin", "triggers", "update"];
const os = require("os");

const isSecret = (v) => v !== null && typeof v === "object" && v[SIG_KEY] === SECRET_SIG;
const secretIf = (cond, v) => (cond ? { [SIG_KEY]: SECRET_SIG, value: v } : v);

// Deep-unwraps secrets; records in seen.secret whether there was any.
function reveal(v, seen) {
    if (isSecret(v)) {
        seen.secret = true;
        return reveal(v.value, seen);
    }
    if (Array.isArray(v)) return v.map((e) => reveal(e, seen));
    if (v !== null && typeof v === "object" && v[SIG_KEY] === undefined) {
        const out = {};
        for (const k of Object.keys(v)) out[k] = reveal(v[k], seen);
        return out;
    }
    return v;
}

function hasUnknown(v) {
    if (v === UNKNOWN) return true;
    if (Array.isArray(v)) return v.some(hasUnknown);
    if (v !== null && typeof v === "object") return Object.keys(v).some((k) => hasUnknown(v[k]));
    return false;
}

// gobwas/glob-style: ** crosses "/", * and ? do not, {a,b} alternatives, [..] classes.
function globSource(glob) {
    let re = "";
    for (let i = 0; i < glob.length; i++) {
        const c = glob[i];
        if (c === "*") {
            if (glob[i + 1] === "*") {
                re += ".*";
                i++;
            } else re += "[^/]*";
        } else if (c === "?") re += "[^/]";
        else if (c === "{" && glob.indexOf("}", i) > 0) {
            const end = glob.indexOf("}", i);
            re += "(?:" + glob.slice(i + 1, end).split(",").map(globSource).join("|") + ")";
            i = end;
        } else if (c === "[" && glob.indexOf("]", i) > 0) {
            const end = glob.indexOf("]", i);
            const cls = glob.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\");
            re += "[" + cls + "]";
            i = end;
        } else re += c.replace(/[.+^$()|\\/{}[\]]/g, "\\$&");
    }
    return re;
}

function listFiles(root, rel, out) {
    for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
        const p = rel ? rel + "/" + ent.name : ent.name;
        if (ent.isDirectory()) listFiles(root, p, out);
        else out.push(p);
    }
    return out;
}

function globAssets(dir, globs) {
    const rules = globs.map((g) => ({ exclude: g.startsWith("!"), re: new RegExp("^" + globSource(g.replace(/^!/, "")) + "$") }));
    const assets = {};
    for (const rel of listFiles(dir, "", [])) {
        for (const r of rules) {
            if (!r.re.test(rel)) continue;
            if (r.exclude) delete assets[rel];
            else {
                const abs = path.join(dir, rel);
                const hash = crypto.createHash("sha256").update(fs.readFileSync(abs)).digest("hex");
                assets[rel] = { [SIG_KEY]: ASSET_SIG, path: abs, hash };
            }
        }
    }
    return assets;
}

// Runs a command like pulumi-command's local run(): interpreter (default
// /bin/sh -c), dir (default: the plugin's cwd, i.e. the program directory),
// environment on top of ours, previous stdout/stderr in PULUMI_COMMAND_STDOUT/
// PULUMI_COMMAND_STDERR unless addPreviousOutputInEnv is false, stdin, and a
// trailing newline trimmed from the captured stdout/stderr.
function run(command, ins, prev, label) {
    const interpreter = ins.interpreter && ins.interpreter.length > 0 ? ins.interpreter : ["/bin/sh", "-c"];
    const argv = Array.isArray(command) ? command : [command];
    // Like pulumi-command, errors name the command; long scripts are cut to their first line.
    const text = String(label !== undefined ? label : command);
    const firstLine = text.split("\n").find((l) => l.trim() && !/^(set -|umask|cd \/$)/.test(l.trim())) || text.split("\n")[0];
    const shown = JSON.stringify(text.length > 200 ? `${firstLine.slice(0, 120)} ... (${text.length} chars)` : text);
    const cwd = ins.dir || process.cwd();
    const env = Object.assign({}, process.env, ins.environment || {});
    if (ins.addPreviousOutputInEnv === undefined || ins.addPreviousOutputInEnv === null || ins.addPreviousOutputInEnv) {
        if (prev && prev.stdout) env.PULUMI_COMMAND_STDOUT = prev.stdout;
        if (prev && prev.stderr) env.PULUMI_COMMAND_STDERR = prev.stderr;
    }
    return new Promise((resolve, reject) => {
        const child = childProcess.spawn(interpreter[0], [...interpreter.slice(1), ...argv], { cwd, env });
        const stdout = [];
        const stderr = [];
        const both = [];
        child.stdout.on("data", (d) => (stdout.push(d), both.push(d)));
        child.stderr.on("data", (d) => (stderr.push(d), both.push(d)));
        child.on("error", (err) => reject(new Error(`${err.message}: running ${shown}`)));
        child.on("close", (code, signal) => {
            if (code !== 0) {
                const why = signal ? `signal: ${signal}` : `exit status ${code}`;
                reject(new Error(`${why}: running ${shown}:\n${Buffer.concat(both).toString()}`));
                return;
            }
            const res = {
                stdout: Buffer.concat(stdout).toString().replace(/\n$/, ""),
                stderr: Buffer.concat(stderr).toString().replace(/\n$/, ""),
            };
            try {
                if (ins.assetPaths) res.assets = globAssets(cwd, ins.assetPaths);
                if (ins.archivePaths) res.archive = { [SIG_KEY]: ARCHIVE_SIG, assets: globAssets(cwd, ins.archivePaths) };
            } catch (e) {
                reject(e);
                return;
            }
            resolve(res);
        });
        child.stdin.on("error", () => undefined);
        if (ins.stdin) child.stdin.write(ins.stdin);
        child.stdin.end();
    });
}

// Runs a command on a remote host over SSH like pulumi-command's remote Command:
// the command string goes to the remote shell, stdin is piped, environment is
// exported in front of the command (pulumi-command uses ssh setenv, which needs
// AcceptEnv; exporting works everywhere), previous outputs likewise.
async function runRemote(command, ins, prev) {
    const c = ins.connection || {};
    if (!c.host) throw new Error("connection.host is required");
    if (c.password && !c.privateKey) throw new Error("the stand-in supports key authentication only (connection.privateKey)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-command-ssh-"));
    fs.chmodSync(dir, 0o700);
    const key = path.join(dir, "key");
    try {
        if (c.privateKey) fs.writeFileSync(key, c.privateKey.endsWith("\n") ? c.privateKey : c.privateKey + "\n", { mode: 0o600 });
        const env = Object.assign({}, ins.environment || {});
        if (ins.addPreviousOutputInEnv === undefined || ins.addPreviousOutputInEnv === null || ins.addPreviousOutputInEnv) {
            if (prev && prev.stdout) env.PULUMI_COMMAND_STDOUT = prev.stdout;
            if (prev && prev.stderr) env.PULUMI_COMMAND_STDERR = prev.stderr;
        }
        const q = (w) => "'" + String(w).replace(/'/g, "'\\''") + "'";
        const exports = Object.keys(env).sort().map((k) => `export ${k}=${q(env[k])}; `).join("");
        const timeout = Math.max(1, Math.round((c.perDialTimeout || 15)));
        const args = [
            "-p", String(c.port || 22),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", `ConnectTimeout=${timeout}`, "-o", "ServerAliveInterval=15",
            "-o", "IdentitiesOnly=yes",
        ];
        if (c.privateKey) args.push("-i", key);
        args.push("-l", c.user || "root", c.host, exports + command);
        const attempts = Math.max(1, c.dialErrorLimit || 10);
        for (let i = 1; ; i++) {
            try {
                return await run(args, Object.assign({}, ins, { interpreter: ["ssh"], dir: os.tmpdir(), environment: {}, addPreviousOutputInEnv: false, assetPaths: undefined, archivePaths: undefined }), undefined, command);
            } catch (e) {
                // ssh exits 255 when it cannot connect: retry like dialErrorLimit; anything else is the command's failure.
                if (!/exit status 255/.test(e.message) || i >= attempts) throw e;
                await new Promise((r) => setTimeout(r, 1000));
            }
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

const typeOf = (urn) => urn.split("::")[2].split("$").pop();
const isRemote = (urn) => typeOf(urn) === "command:remote:Command";
function assertLocal(urn) {
    const t = typeOf(urn);
    if (t !== "command:local:Command" && t !== "command:remote:Command") {
        throw new Error(`${t} is not supported by the stand-in command provider installed by scripts/install-pulumi.sh (only command:local:Command and command:remote:Command)`);
    }
}
const runFor = (urn, command, ins, prev) => (isRemote(urn) ? runRemote(command, ins, prev) : run(command, ins, prev));
function pickInputs(props) {
    const out = {};
    for (const k of INPUT_KEYS) if (props[k] !== undefined) out[k] = props[k];
    return out;
}
function outputs(inputs, res, secret) {
    const outs = Object.assign({}, inputs, {
        stdout: secretIf(secret, res.stdout || ""),
        stderr: secretIf(secret, res.stderr || ""),
    });
    if (res.assets !== undefined) outs.assets = secretIf(secret, res.assets);
    if (res.archive !== undefined) outs.archive = secretIf(secret, res.archive);
    return outs;
}
const same = (a, b) => JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b);

provider.main({
    version: VERSION,
    async check(urn, olds, news) {
        assertLocal(urn);
        const n = reveal(news, {});
        const failures = [];
        for (const k of ["create", "update", "delete", "dir", "stdin", "logging"]) {
            if (n[k] !== undefined && n[k] !== UNKNOWN && typeof n[k] !== "string") {
                failures.push({ property: k, reason: `${k} must be a string` });
            }
        }
        return { inputs: news, failures };
    },
    async diff(id, urn, olds, news) {
        // Any input change is an update (which re-runs update, or else create);
        // a change of triggers is a replacement.
        const replaces = [];
        let changes = false;
        for (const k of INPUT_KEYS) {
            if (hasUnknown(news[k]) || !same(olds[k], news[k])) {
                changes = true;
                if (k === "triggers") replaces.push(k);
            }
        }
        return { changes, replaces };
    },
    async create(urn, inputs) {
        assertLocal(urn);
        const id = urn.split("::").pop() + crypto.randomBytes(4).toString("hex");
        const seen = {};
        const ins = reveal(inputs, seen);
        const res = ins.create ? await runFor(urn, ins.create, ins, undefined) : {};
        return { id, outs: outputs(pickInputs(inputs), res, seen.secret) };
    },
    async update(id, urn, olds, news) {
        assertLocal(urn);
        const seen = {};
        const ins = reveal(news, seen);
        const prev = reveal(olds, {});
        const cmd = ins.update || ins.create;
        const res = cmd ? await runFor(urn, cmd, ins, prev) : { stdout: prev.stdout, stderr: prev.stderr };
        return { outs: outputs(pickInputs(news), res, seen.secret) };
    },
    async delete(id, urn, props) {
        const p = reveal(props, {});
        if (p.delete) await runFor(urn, p.delete, p, p);
    },
    async invoke(token, inputs) {
        if (token !== "command:local:run") {
            throw new Error(`${token} is not supported by the stand-in command provider (only command:local:run)`);
        }
        const seen = {};
        const ins = reveal(inputs, seen);
        const res = await run(ins.command, ins, undefined);
        return { outputs: Object.assign({}, inputs, outputs({}, res, seen.secret)) };
    },
}, process.argv.slice(2));
