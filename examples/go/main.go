package main

import (
	"example.com/pulumi-bdr/sdk/go/pulumibdr"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg := config.New(ctx, "")
		writeNode := cfg.Get("writeNode")
		if writeNode == "" {
			writeNode = "n1"
		}
		// Nodes listen on firstPort, firstPort+1, firstPort+2; PgBouncer on firstPort+100, HAProxy on firstPort+101.
		firstPort := cfg.GetInt("firstPort")
		if firstPort == 0 {
			firstPort = 32432
		}
		nodes := pulumibdr.NodeArray{}
		for i, name := range []string{"n1", "n2", "n3"} {
			nodes = append(nodes, pulumibdr.NodeArgs{
				Name: pulumi.String(name),
				Host: pulumibdr.HostArgs{Kind: pulumi.String("local")},
				Port: pulumi.Int(firstPort + i),
			})
		}
		cluster, err := pulumibdr.NewBdrCluster(ctx, "gobdr", &pulumibdr.BdrClusterArgs{
			Nodes:               nodes,
			ReplicationPassword: cfg.RequireSecret("password"),
			WriteNode:           pulumi.String(writeNode),
			WaitTimeoutSeconds:  pulumi.Int(120),
			Proxy: pulumibdr.ProxyArgs{
				PgbouncerPort: pulumi.Int(firstPort + 100),
				HaproxyPort:   pulumi.Int(firstPort + 101),
			},
		})
		if err != nil {
			return err
		}
		ctx.Export("nodeDsns", cluster.NodeDsns)
		ctx.Export("pgbouncer", cluster.PgbouncerEndpoint)
		ctx.Export("writeNode", cluster.WriteNode)
		ctx.Export("connectionString", cluster.ConnectionString)
		return nil
	})
}
