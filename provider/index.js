// The pulumi-bdr component provider plugin. Exports no component class (so the Node.js host does not
// infer a schema from TypeScript sources); it serves provider/schema.json itself.
"use strict";
require("../dist/lib/provider/main").serve(process.argv.slice(2));
