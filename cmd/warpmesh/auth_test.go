package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warpmesh/warpmesh/engine"
)

// --auth reaches engine.Options.Auth, mode by mode, and only with a key.
func TestAuthFlagToOptions(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("cd", keySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want engine.AuthMode
	}{
		{nil, engine.AuthRequired},
		{[]string{"--auth", "required"}, engine.AuthRequired},
		{[]string{"--auth", "accept-plaintext"}, engine.AuthAcceptPlaintext},
		{[]string{"--auth", "send-plaintext"}, engine.AuthSendPlaintext},
	} {
		var errs bytes.Buffer
		fs := newFlagSet("node", "node", &errs)
		var nf nodeFlags
		nf.register(fs, 7946)
		if err := parseFlags(fs, append([]string{"--key-file", keyFile}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		o, err := nf.options(nil)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.Keyring == nil || o.Auth != tc.want {
			t.Errorf("%v: keyring %v, Auth %v, want %v", tc.args, o.Keyring != nil, o.Auth, tc.want)
		}
	}
	var errs bytes.Buffer
	fs := newFlagSet("node", "node", &errs)
	var nf nodeFlags
	nf.register(fs, 7946)
	if err := parseFlags(fs, []string{"--key-file", keyFile, "--auth", "optional"}); err != nil {
		t.Fatal(err)
	}
	if _, err := nf.options(nil); err == nil || !strings.Contains(err.Error(), "--auth") {
		t.Errorf("--auth=optional: %v", err)
	}
}

// A keyed node in send-plaintext mode, the first step of rolling a key
// into a plaintext mesh, still serves plaintext peers: a one-shot
// invalidate without the key reaches it and is applied.
func TestSendPlaintextNodeServesPlaintextPeers(t *testing.T) {
	cluster := "auth-" + strconv.Itoa(os.Getpid())
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ef", keySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startChild(t, loopbackNode(cluster, "--print", "--key-file", keyFile, "--auth", "send-plaintext")...)
	seed := field(a.waitLine(t, "self "), 2)
	out, err := exec.Command(binary, "invalidate", "--bind", "127.0.0.1", "--peers", seed, "--cluster", cluster,
		"--linger", "0", "plain:1").CombinedOutput()
	if err != nil {
		t.Fatalf("plaintext invalidate to a send-plaintext node: %v\n%s", err, out)
	}
	origin := field(a.waitLine(t, "inv "), 1)
	a.waitInv(t, origin, "exact", "plain:1")
}
