package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// cliEnv returns the WARPMESH_* variable of every flag of `warpmesh node`.
func cliEnv(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(warpmesh, "node", "-h").CombinedOutput() // -h exits 0 and prints to stderr
	env := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		env["WARPMESH_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if len(env) < 20 || !env["WARPMESH_PEERS"] || !env["WARPMESH_SHUTDOWN_GRACE"] {
		t.Fatalf("could not read the flags of warpmesh node -h:\n%s", out)
	}
	return env
}

func readDocs(t *testing.T, rel string) []any {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := parseYAML(string(src))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return docs
}

// byKind indexes Kubernetes documents by kind.
func byKind(t *testing.T, docs []any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range docs {
		m, ok := d.(map[string]any)
		if !ok {
			t.Fatalf("a document is not a mapping: %v", d)
		}
		kind, _ := m["kind"].(string)
		if _, dup := out[kind]; dup {
			t.Fatalf("two %s documents", kind)
		}
		out[kind] = m
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

// envOf returns a container's env as name → value (valueFrom as "<from>").
func envOf(t *testing.T, c any) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range list(at(c, "env")) {
		name := str(at(e, "name"))
		if at(e, "valueFrom") != nil {
			env[name] = "<from>"
		} else {
			env[name] = str(at(e, "value"))
		}
	}
	return env
}

// checkWarpmeshEnv asserts every WARPMESH_* variable is a CLI flag's.
func checkWarpmeshEnv(t *testing.T, where string, env map[string]string, flags map[string]bool) {
	t.Helper()
	n := 0
	for name := range env {
		if !strings.HasPrefix(name, "WARPMESH_") {
			continue
		}
		n++
		if !flags[name] {
			t.Errorf("%s: %s is not the variable of any warpmesh node flag", where, name)
		}
	}
	if n == 0 {
		t.Errorf("%s: no WARPMESH_* variables", where)
	}
}

func TestKubernetesManifest(t *testing.T) {
	flags := cliEnv(t)
	k := byKind(t, readDocs(t, "deploy/kubernetes/warpmesh.yaml"))
	for _, kind := range []string{"Secret", "Service", "Deployment", "NetworkPolicy"} {
		if k[kind] == nil {
			t.Fatalf("no %s in the manifest", kind)
		}
	}

	svc := k["Service"]
	if str(at(svc, "spec", "clusterIP")) != "None" {
		t.Errorf("Service clusterIP %q, want None (headless: the name lists every pod)", at(svc, "spec", "clusterIP"))
	}
	if str(at(svc, "spec", "publishNotReadyAddresses")) != "true" {
		t.Error("Service publishNotReadyAddresses is not true: a starting pod could never be found")
	}
	sp := at(svc, "spec", "ports", "name=warpmesh")
	if str(at(sp, "protocol")) != "UDP" || str(at(sp, "port")) != "7946" {
		t.Errorf("Service port warpmesh = %v, want 7946/UDP", sp)
	}
	dep := k["Deployment"]
	pod := at(dep, "spec", "template")
	sel := at(svc, "spec", "selector", "app.kubernetes.io/name")
	if sel == nil || at(pod, "metadata", "labels", "app.kubernetes.io/name") != sel {
		t.Errorf("the Service selector %v does not select the Deployment's pods", sel)
	}

	c := at(pod, "spec", "containers", "name=warpmesh")
	if c == nil {
		t.Fatal("no container named warpmesh")
	}
	ports := map[string]string{}
	for _, p := range list(at(c, "ports")) {
		ports[str(at(p, "name"))] = str(at(p, "containerPort")) + "/" + str(at(p, "protocol"))
	}
	if ports["warpmesh"] != "7946/UDP" || ports["admin"] != "8080/TCP" {
		t.Errorf("container ports %v, want warpmesh 7946/UDP and admin 8080/TCP", ports)
	}
	if str(at(sp, "targetPort")) != "warpmesh" && str(at(sp, "targetPort")) != "7946" {
		t.Errorf("Service targetPort %v is not the container's mesh port", at(sp, "targetPort"))
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		g := at(c, probe, "httpGet")
		if str(at(g, "path")) != path || (str(at(g, "port")) != "admin" && str(at(g, "port")) != "8080") {
			t.Errorf("%s = %v, want GET %s on the admin port", probe, g, path)
		}
	}

	env := envOf(t, c)
	checkWarpmeshEnv(t, "Deployment", env, flags)
	if env["WARPMESH_PORT"] != strings.Split(ports["warpmesh"], "/")[0] {
		t.Errorf("WARPMESH_PORT %q is not the container's mesh port %s", env["WARPMESH_PORT"], ports["warpmesh"])
	}
	if !strings.HasSuffix(env["WARPMESH_HTTP"], ":"+strings.Split(ports["admin"], "/")[0]) {
		t.Errorf("WARPMESH_HTTP %q does not listen on the admin port %s", env["WARPMESH_HTTP"], ports["admin"])
	}
	if !strings.HasPrefix(env["WARPMESH_PEERS"], str(at(svc, "metadata", "name"))+".") ||
		!strings.HasSuffix(env["WARPMESH_PEERS"], ":"+str(at(sp, "port"))) {
		t.Errorf("WARPMESH_PEERS %q is not the headless Service's name and port", env["WARPMESH_PEERS"])
	}
	if env["WARPMESH_UNICAST_ONLY"] != "true" {
		t.Errorf("WARPMESH_UNICAST_ONLY %q: Kubernetes networks rarely carry multicast", env["WARPMESH_UNICAST_ONLY"])
	}
	if env["POD_IP"] != "<from>" || env["WARPMESH_ADVERTISE"] != "$(POD_IP)" {
		t.Errorf("WARPMESH_ADVERTISE %q: want the pod's IP from the downward API", env["WARPMESH_ADVERTISE"])
	}
	// The key file lies in a volume mounted from the keyring Secret, under
	// the Secret's key.
	keyFile := env["WARPMESH_KEY_FILE"]
	var secretVol string
	for _, vm := range list(at(c, "volumeMounts")) {
		mp := strings.TrimSuffix(str(at(vm, "mountPath")), "/") + "/"
		if strings.HasPrefix(keyFile, mp) {
			secretVol = str(at(vm, "name"))
			if str(at(vm, "readOnly")) != "true" {
				t.Error("the keyring volume is not mounted read-only")
			}
			vol := at(pod, "spec", "volumes", "name="+secretVol)
			secret := k["Secret"]
			if str(at(vol, "secret", "secretName")) != str(at(secret, "metadata", "name")) {
				t.Errorf("volume %s is not the Secret %v", secretVol, at(secret, "metadata", "name"))
			}
			// The node runs unprivileged: the file must be readable by its
			// group (fsGroup) or by everyone.
			var mode int
			fmt.Sscanf(str(at(vol, "secret", "defaultMode")), "%o", &mode)
			fsGroup := str(at(pod, "spec", "securityContext", "fsGroup"))
			if mode&0o004 == 0 && (mode&0o040 == 0 || fsGroup == "") {
				t.Errorf("the keyring (defaultMode %s, fsGroup %q) is not readable by the unprivileged node", str(at(vol, "secret", "defaultMode")), fsGroup)
			}
			if at(secret, "stringData", strings.TrimPrefix(keyFile, mp)) == nil {
				t.Errorf("the Secret has no key %q for WARPMESH_KEY_FILE", strings.TrimPrefix(keyFile, mp))
			}
		}
	}
	if keyFile == "" || secretVol == "" {
		t.Errorf("WARPMESH_KEY_FILE %q is not in a volume mounted from the Secret", keyFile)
	}
	if tf := env["WARPMESH_HTTP_TOKEN_FILE"]; tf != "" {
		dir, key := filepath.Split(tf)
		if filepath.Dir(keyFile) != filepath.Clean(dir) || at(k["Secret"], "stringData", key) == nil {
			t.Errorf("WARPMESH_HTTP_TOKEN_FILE %q is not a key of the mounted Secret", tf)
		}
	}
	grace, err := time.ParseDuration(env["WARPMESH_SHUTDOWN_GRACE"])
	tgp, err2 := time.ParseDuration(str(at(pod, "spec", "terminationGracePeriodSeconds")) + "s")
	if err != nil || err2 != nil || grace >= tgp {
		t.Errorf("WARPMESH_SHUTDOWN_GRACE %q must be below terminationGracePeriodSeconds %v", env["WARPMESH_SHUTDOWN_GRACE"], tgp)
	}

	// The NetworkPolicy lets the mesh's UDP in and out between its pods.
	np := k["NetworkPolicy"]
	if at(np, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != sel {
		t.Error("the NetworkPolicy does not select the mesh's pods")
	}
	for _, dir := range []string{"ingress", "egress"} {
		found := false
		for _, rule := range list(at(np, "spec", dir)) {
			for _, p := range list(at(rule, "ports")) {
				if str(at(p, "protocol")) == "UDP" && str(at(p, "port")) == "7946" {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("the NetworkPolicy has no %s rule for 7946/UDP", dir)
		}
	}
	if types := list(at(np, "spec", "policyTypes")); !slices.Contains(types, any("Ingress")) || !slices.Contains(types, any("Egress")) {
		t.Errorf("policyTypes %v, want Ingress and Egress", types)
	}
}

// TestComposeAndStackFiles checks the Docker examples' variables against
// the CLI (the container tests run them).
func TestComposeAndStackFiles(t *testing.T) {
	flags := cliEnv(t)
	for file, peers := range map[string]string{
		"deploy/compose/docker-compose.yml":           "warpmesh:7946",
		"deploy/compose/docker-compose.multicast.yml": "",
		"deploy/swarm/stack.yml":                      "tasks.warpmesh:7946",
	} {
		docs := readDocs(t, file)
		if len(docs) != 1 {
			t.Fatalf("%s: %d documents", file, len(docs))
		}
		env := map[string]string{}
		for k, v := range at(docs[0], "services", "warpmesh", "environment").(map[string]any) {
			env[k] = str(v)
		}
		checkWarpmeshEnv(t, file, env, flags)
		if env["WARPMESH_PEERS"] != peers {
			t.Errorf("%s: WARPMESH_PEERS %q, want %q", file, env["WARPMESH_PEERS"], peers)
		}
	}
}

func TestYAMLReader(t *testing.T) {
	docs, err := parseYAML("a: 1 # c\nb:\n  - x\n  - k: v\n    l: \"q # not\"\nc: |\n  one\n  two\nd: [\"e\", f]\ne: {}\n---\n- 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || at(docs[0], "a") != "1" || at(docs[0], "b", "0") != "x" || at(docs[0], "b", "1", "l") != "q # not" ||
		at(docs[0], "c") != "one\ntwo\n" || at(docs[0], "d", "1") != "f" || at(docs[1], "0") != "1" {
		t.Fatalf("parsed %#v", docs)
	}
	for _, bad := range []string{"a: 1\n  b: 2\n", "a: &x 1\n", "a: \"open\n", "a: 1\na: 2\n", "just text\n"} {
		if _, err := parseYAML(bad); err == nil {
			t.Errorf("parseYAML(%q): no error", bad)
		}
	}
}
