package logflag

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "" for success
		want    string // in the output of an Info line
	}{
		{nil, "", "level=INFO"},
		{[]string{"--log-format=json"}, "", `"level":"INFO"`},
		{[]string{"--log-level=debug"}, "", "level=INFO"},
		{[]string{"--log-level=error"}, "", ""},
		{[]string{"--log-format=xml"}, `invalid --log-format="xml"`, ""},
		{[]string{"--log-level=loud"}, `invalid --log-level="loud"`, ""},
	} {
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		log, err := f.Logger(&out)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		log.Info("hello")
		if got := out.String(); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%v: logged %q, want it to contain %q", tc.args, got, tc.want)
		}
	}
}
