package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// child is a re-executed copy of this binary playing one role.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan report // closed at EOF of the child's stdout
}

// startChild re-executes this binary with -role role -idx idx and the spec
// in the environment. Its stderr goes to ours.
func startChild(spec *Spec, role string, idx int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-role", role, "-idx", strconv.Itoa(idx))
	cmd.Env = append(os.Environ(), envSpec+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: fmt.Sprintf("%s %s[%d]", spec.System, role, idx), cmd: cmd, stdin: stdin, lines: make(chan report, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for sc.Scan() {
			var r report
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				c.lines <- r
			}
		}
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// await waits for a report of type ev, skipping progress reports.
func (c *child) await(ev string, timeout time.Duration) (report, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case r, ok := <-c.lines:
			switch {
			case !ok:
				return report{}, fmt.Errorf("%s exited before %q", c.name, ev)
			case r.Ev == "error":
				return report{}, fmt.Errorf("%s: %s", c.name, r.Err)
			case r.Ev == ev:
				return r, nil
			}
		case <-deadline.C:
			return report{}, fmt.Errorf("%s: no %q within %v", c.name, ev, timeout)
		}
	}
}

// stop closes the child's stdin (its signal to finish) and waits for it to
// exit, killing it after grace.
func (c *child) stop(grace time.Duration) {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// StartHelper starts this system's Helper in a child process and waits
// until it serves. It is meant for System.Prepare; the returned stop ends
// the helper.
func StartHelper(spec *Spec) (pid int, stop func(), err error) {
	c, err := startChild(spec, "helper", 0)
	if err != nil {
		return 0, nil, err
	}
	if _, err := c.await("ready", 20*time.Second); err != nil {
		c.stop(time.Second)
		return 0, nil, err
	}
	return c.pid(), func() { c.stop(5 * time.Second) }, nil
}
