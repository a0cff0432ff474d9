package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Binaries built once by TestMain; skipReason says why the suite cannot
// run here (then every test skips with it).
var (
	nodeBin    string // test/cluster/internal/meshnode
	cliBin     string // cmd/warpmesh
	skipReason string
)

// resultsEnv names a file that receives the results table after a run
// (the committed RESULTS.md is written this way; tests never write into
// the source tree on their own).
const resultsEnv = "WARPMESH_CLUSTER_RESULTS"

// binDirPrefix names the temporary directories holding the binaries:
// binDirPrefix + "<pid>-<random>".
const binDirPrefix = "warpmesh-cluster-"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	skipReason = environmentProblem()
	if skipReason == "" {
		removeLeftovers()
		removeLeftoverDirs()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binDirPrefix, os.Getpid()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "cluster: build:", err)
			return 1
		}
		stop := cleanupOnSignal()
		defer stop()
	}
	code := m.Run()
	teardownAll()
	if path := os.Getenv(resultsEnv); path != "" && skipReason == "" {
		if err := os.WriteFile(path, []byte(renderResults()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cluster: results:", err)
			return 1
		}
	}
	return code
}

// environmentProblem returns why the namespaces cannot be made, or "".
func environmentProblem() string {
	switch {
	case runtime.GOOS != "linux":
		return "multi-host tests need Linux network namespaces"
	case os.Geteuid() != 0:
		return "multi-host tests need root (network namespaces); CI runs them as root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "multi-host tests need the ip command (iproute2)"
	}
	return ""
}

// needCluster skips t when the suite cannot run here.
func needCluster(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if testing.Short() {
		t.Skip("multi-host tests skipped in -short mode")
	}
}

// needNft skips t when nftables is missing (loss and partition faults).
func needNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("this scenario needs nft (nftables) for loss or partition faults; .ci/run installs it")
	}
}

func buildBinaries(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	nodeBin = filepath.Join(dir, "meshnode")
	cliBin = filepath.Join(dir, "warpmesh")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ out, pkg string }{
		{nodeBin, "./test/cluster/internal/meshnode"},
		{cliBin, "./cmd/warpmesh"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %v\n%s", b.pkg, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// cleanupOnSignal tears everything down when the test binary is
// interrupted (go test's timeout sends SIGQUIT, Ctrl-C SIGINT).
func cleanupOnSignal() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "cluster: %v: tearing down namespaces\n", s)
			teardownAll()
			os.Exit(2)
		case <-ctx.Done():
		}
	}()
	return func() { signal.Stop(sigs); cancel() }
}
