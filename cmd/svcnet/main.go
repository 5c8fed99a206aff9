// Command svcnet is Kubernetes Service networking in one binary: `svcnet up` runs a local cluster.
package main

import (
	"os"

	"github.com/svcnet/svcnet/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
