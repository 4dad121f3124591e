// Command pith is a Pulp 3 compatible repository manager in one binary.
package main

import (
	"os"

	"github.com/pith-project/pith/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
