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
		nodes := pulumibdr.NodeArray{}
		for i, name := range []string{"n1", "n2", "n3"} {
			nodes = append(nodes, pulumibdr.NodeArgs{
				Name: pulumi.String(name),
				Host: pulumibdr.HostArgs{Kind: pulumi.String("local")},
				Port: pulumi.Int(32432 + i),
			})
		}
		cluster, err := pulumibdr.NewBdrCluster(ctx, "gobdr", &pulumibdr.BdrClusterArgs{
			Nodes:               nodes,
			ReplicationPassword: cfg.RequireSecret("password"),
			WriteNode:           pulumi.String(writeNode),
			WaitTimeoutSeconds:  pulumi.Int(120),
			Proxy: pulumibdr.ProxyArgs{
				HaproxyPort:   pulumi.Int(32533),
				PgbouncerPort: pulumi.Int(32532),
			},
		})
		if err != nil {
			return err
		}
		ctx.Export("nodeDsns", cluster.NodeDsns)
		ctx.Export("writeNode", cluster.WriteNode)
		ctx.Export("connectionString", cluster.ConnectionString)
		return nil
	})
}
