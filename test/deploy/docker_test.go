package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// longEnv runs the longer variants (more replicas).
const longEnv = "WARPMESH_DEPLOY_LONG"

var (
	imageOnce sync.Once
	imageErr  error
	image     = fmt.Sprintf("warpmesh-test:%d", os.Getpid())
	imageMade bool
)

// requireDocker skips the test unless a Docker daemon answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("Docker tests need the docker command; CI has Docker and runs them")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("Docker tests need a running Docker daemon (docker info: %v: %s); CI runs them", err, strings.TrimSpace(string(out)))
	}
}

// buildImage builds the FROM-scratch image once, as deploy/build-image.sh
// does: a context holding only the static binary, and deploy/Dockerfile.
func buildImage(t *testing.T) {
	t.Helper()
	requireDocker(t)
	imageOnce.Do(func() {
		ctx, err := os.MkdirTemp("", "warpmesh-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(ctx)
		bin, err := os.ReadFile(warpmesh)
		if err == nil {
			err = os.WriteFile(filepath.Join(ctx, "warpmesh"), bin, 0o755)
		}
		if err != nil {
			imageErr = err
			return
		}
		out, err := exec.Command("docker", "build", "-q", "-f", filepath.Join(repoRoot, "deploy", "Dockerfile"), "-t", image, ctx).CombinedOutput()
		if err != nil {
			imageErr = fmt.Errorf("docker build: %v: %s", err, out)
			return
		}
		imageMade = true
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

// removeLeftovers removes what an earlier run of this package left when it
// was killed before its cleanups ran: Compose containers and networks of
// projects wmt<pid>-…, and a swarm on 127.0.0.1 running only stacks
// wmt<pid>, where that process is gone. It touches nothing else.
func removeLeftovers() {
	if exec.Command("docker", "info").Run() != nil {
		return
	}
	dead := func(name string) bool {
		rest, ok := strings.CutPrefix(name, "wmt")
		if !ok {
			return false
		}
		digits := strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if len(digits) == 0 || !strings.HasPrefix(rest, digits[0]) {
			return false
		}
		pid, err := strconv.Atoi(digits[0])
		if err != nil || pid == os.Getpid() {
			return false
		}
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err != nil
	}
	out, _ := exec.Command("docker", "ps", "-a", "--format", `{{.ID}} {{.Label "com.docker.compose.project"}}`).Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && dead(f[1]) {
			exec.Command("docker", "rm", "-f", f[0]).Run()
		}
	}
	out, _ = exec.Command("docker", "network", "ls", "--format", "{{.Name}}").Output()
	for _, name := range strings.Fields(string(out)) {
		if dead(name) {
			exec.Command("docker", "network", "rm", name).Run()
		}
	}
	state, _ := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}").Output()
	if strings.TrimSpace(string(state)) != "active 127.0.0.1" {
		return
	}
	stacks, _ := exec.Command("docker", "stack", "ls", "--format", "{{.Name}}").Output()
	names := strings.Fields(string(stacks))
	for _, n := range names {
		if !dead(n) {
			return
		}
	}
	if len(names) > 0 { // a swarm without stacks may be another run's, just made
		removeSwarm(names[0], true)
	}
}

// cleanupDocker removes the image (TestMain, after every test).
func cleanupDocker() {
	if imageMade {
		exec.Command("docker", "rmi", "-f", image).Run()
	}
}

// run runs a command, failing the test with its output on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// composeCommand returns the Compose CLI: the docker plugin or docker-compose.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Skip("Compose tests need docker compose or docker-compose")
	return nil
}

// keyring writes a keyring file readable by the image's unprivileged user.
func keyring(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(path, []byte(strings.Repeat("5a", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// aliveIn returns how many members the node in container ctr sees alive,
// asking its admin endpoint from inside the container (loopback only).
func aliveIn(ctr string) (int, error) {
	out, err := exec.Command("docker", "exec", ctr, "/warpmesh", "members", "--http", "127.0.0.1:8080", "--timeout", "2s").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "alive" && !strings.Contains(line, "(this node)") {
			n++
		}
	}
	return n, nil
}

// waitMesh waits until list returns want running containers and each sees
// the other want-1 alive.
func waitMesh(t *testing.T, what string, want int, list func() []string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok := true
		ctrs := list()
		if len(ctrs) != want {
			ok, last = false, fmt.Sprintf("%d containers running", len(ctrs))
		}
		for _, c := range ctrs {
			if !ok {
				break
			}
			if n, err := aliveIn(c); err != nil || n != want-1 {
				ok, last = false, fmt.Sprintf("container %.12s sees %d alive (%v)", c, n, err)
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, last)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
}

// containers lists running containers with every label given.
func containers(t *testing.T, labels ...string) []string {
	t.Helper()
	args := []string{"ps", "-q"}
	for _, l := range labels {
		args = append(args, "--filter", "label="+l)
	}
	return strings.Fields(run(t, "docker", args...))
}

// logsOnFailure prints the containers' logs when the test has failed.
func logsOnFailure(t *testing.T, list func() []string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range list() {
			out, _ := exec.Command("docker", "logs", "--tail", "30", c).CombinedOutput()
			t.Logf("logs of %.12s:\n%s", c, out)
		}
	})
}

// composeOverride is the test's additions to the example: the test image,
// no upstream DNS but 127.0.0.1 (nothing is forwarded to a real server), a
// cluster of the test's own, quick heartbeats, the test's keyring.
func composeOverride(t *testing.T, project string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "override.yml")
	body := fmt.Sprintf(`services:
  warpmesh:
    image: %s
    dns: 127.0.0.1
    environment:
      WARPMESH_CLUSTER: %s
      WARPMESH_HEARTBEAT: 200ms
      WARPMESH_SHUTDOWN_GRACE: 3s
    stop_grace_period: 5s
secrets:
  warpmesh_keyring:
    file: %s
`, image, project, keyring(t))
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCompose brings the example up as project with extra files, and
// registers its teardown (containers, network) even on failure.
func startCompose(t *testing.T, project string, replicas int, extra ...string) (compose func(args ...string) string, list func() []string) {
	t.Helper()
	buildImage(t)
	cmd := composeCommand(t)
	files := []string{"-p", project, "-f", filepath.Join(repoRoot, "deploy", "compose", "docker-compose.yml")}
	for _, f := range extra {
		files = append(files, "-f", f)
	}
	files = append(files, "-f", composeOverride(t, project))
	compose = func(args ...string) string {
		t.Helper()
		return run(t, cmd[0], append(append(append([]string{}, cmd[1:]...), files...), args...)...)
	}
	list = func() []string {
		return containers(t, "com.docker.compose.project="+project, "com.docker.compose.service=warpmesh")
	}
	t.Cleanup(func() {
		exec.Command(cmd[0], append(append(append([]string{}, cmd[1:]...), files...), "down", "-v", "--remove-orphans", "-t", "5")...).Run()
	})
	logsOnFailure(t, list)
	compose("up", "-d", "--scale", "warpmesh="+strconv.Itoa(replicas))
	return compose, list
}

// TestComposeServiceName: replicas found through the Compose service name
// (Docker's embedded DNS), through a stop and restart, scaling up and down.
func TestComposeServiceName(t *testing.T) {
	project := fmt.Sprintf("wmt%d-dns", os.Getpid())
	compose, list := startCompose(t, project, 3)
	waitMesh(t, "three replicas to find each other by the service name", 3, list)

	victim := list()[0]
	run(t, "docker", "stop", "-t", "5", victim) // SIGTERM: a graceful leave
	waitMesh(t, "the two others to see the stopped replica leave", 2, list)
	run(t, "docker", "start", victim)
	waitMesh(t, "the restarted replica to rejoin", 3, list)

	up := 4
	if os.Getenv(longEnv) != "" {
		up = 8
	}
	compose("up", "-d", "--no-recreate", "--scale", "warpmesh="+strconv.Itoa(up))
	waitMesh(t, "the mesh to take in the new replicas", up, list)
	compose("up", "-d", "--no-recreate", "--scale", "warpmesh=2")
	waitMesh(t, "the mesh to shrink to two", 2, list)
}

// TestComposeMulticast: replicas on a bridge network find each other by
// multicast alone (no seeds).
func TestComposeMulticast(t *testing.T) {
	project := fmt.Sprintf("wmt%d-mc", os.Getpid())
	_, list := startCompose(t, project, 3, filepath.Join(repoRoot, "deploy", "compose", "docker-compose.multicast.yml"))
	waitMesh(t, "three replicas to find each other by multicast", 3, list)
}

// removeSwarm removes the stack, waits for its containers and network to
// go, then leaves the swarm this test created.
func removeSwarm(stack string, hadGW bool) {
	exec.Command("docker", "stack", "rm", stack).Run()
	label := "label=com.docker.stack.namespace=" + stack
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctrs, _ := exec.Command("docker", "ps", "-aq", "--filter", label).Output()
		nets, _ := exec.Command("docker", "network", "ls", "-q", "--filter", label).Output()
		if len(strings.TrimSpace(string(ctrs))) == 0 && len(strings.TrimSpace(string(nets))) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
	if ctrs, _ := exec.Command("docker", "ps", "-aq", "--filter", label).Output(); len(strings.TrimSpace(string(ctrs))) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(string(ctrs))...)...).Run()
	}
	exec.Command("docker", "network", "rm", stack+"_mesh").Run()
	exec.Command("docker", "swarm", "leave", "--force").Run()
	if !hadGW {
		exec.Command("docker", "network", "rm", "docker_gwbridge").Run()
	}
}

// TestSwarmTasks: the stack example on a one-node swarm this test creates:
// tasks found through tasks.<service>, a killed task replaced, scaling.
func TestSwarmTasks(t *testing.T) {
	buildImage(t)
	state := strings.TrimSpace(run(t, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}"))
	if state != "inactive" {
		t.Skipf("this Docker is already in a swarm (%s); the test only runs on a swarm it creates", state)
	}
	hadGW := exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() == nil
	run(t, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
	stack := fmt.Sprintf("wmt%d", os.Getpid())
	t.Cleanup(func() { removeSwarm(stack, hadGW) })
	run(t, "docker", "secret", "create", "warpmesh_keyring", keyring(t))
	override := filepath.Join(t.TempDir(), "override.yml")
	if err := os.WriteFile(override, []byte(fmt.Sprintf(`version: "3.8"
services:
  warpmesh:
    image: %s
    dns: 127.0.0.1
    environment:
      WARPMESH_CLUSTER: %s
      WARPMESH_HEARTBEAT: 200ms
      WARPMESH_SHUTDOWN_GRACE: 3s
    stop_grace_period: 5s
`, image, stack)), 0o644); err != nil {
		t.Fatal(err)
	}
	service := stack + "_warpmesh"
	list := func() []string { return containers(t, "com.docker.swarm.service.name="+service) }
	logsOnFailure(t, list)
	run(t, "docker", "stack", "deploy", "--resolve-image", "never",
		"-c", filepath.Join(repoRoot, "deploy", "swarm", "stack.yml"), "-c", override, stack)
	waitMesh(t, "three tasks to find each other through tasks.warpmesh", 3, list)

	run(t, "docker", "stop", "-t", "5", list()[0]) // the swarm replaces it with a new task
	waitMesh(t, "the replacement task to join", 3, list)

	run(t, "docker", "service", "scale", "-d", service+"=4")
	waitMesh(t, "the mesh to take in a fourth task", 4, list)
	run(t, "docker", "service", "scale", "-d", service+"=2")
	waitMesh(t, "the mesh to shrink to two tasks", 2, list)
}
