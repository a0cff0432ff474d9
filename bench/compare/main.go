package main

import (
	"os"

	"github.com/warpmesh/warpmesh/bench/harness"
)

func main() {
	systems := harness.WarpMeshSystems()
	systems = append(systems, natsSystem(), redisSystem())
	systems = append(systems, memberlistSystems()...)
	os.Exit(harness.Main(systems, os.Args[1:], os.Stdout))
}
