package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// warpmesh is the static binary built by TestMain from cmd/warpmesh.
var warpmesh string

// repoRoot is the repository root (the tests run in test/deploy).
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "warpmesh-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	warpmesh = filepath.Join(dir, "warpmesh")
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go") // go test sets GOROOT
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	// Exactly as deploy/build-image.sh builds it: static, for FROM scratch.
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", warpmesh, "./cmd/warpmesh")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: building warpmesh: %v\n%s", err, out)
		return 1
	}
	removeLeftovers()
	code := m.Run()
	cleanupDocker()
	return code
}
