module example.com/bdr-go

go 1.25

require github.com/pulumi/pulumi/sdk/v3 v3.248.0

replace example.com/pulumi-bdr/sdk/go => ./sdks/pulumi-bdr
