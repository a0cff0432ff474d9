package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("members", "members --http ADDR", stderr)
	addr := fs.String("http", "", "admin `address` of a running node (host:port or URL); required")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the node to answer")
	tokenFile := fs.String("http-token-file", "", "`file` holding the node's admin bearer token, if it requires one")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		return usageErrorf("--http is required")
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return usageErrorf("invalid --timeout=%v: must be positive", *timeout)
	}
	url := *addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/members"
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageErrorf("invalid --http=%q: %v", *addr, err)
	}
	if *tokenFile != "" {
		tok, err := readToken(*tokenFile)
		if err != nil {
			return usageErrorf("invalid --http-token-file=%q: %v", *tokenFile, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	var doc membersDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("%s: bad response: %w", url, err)
	}
	return printMembers(stdout, doc, time.Now())
}

// printMembers writes doc as a table, this node first.
func printMembers(w io.Writer, doc membersDoc, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tADDR\tSTATE\tEPOCH\tINCARNATION\tLAST HEARD\n")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t-\t(this node)\n", doc.Self.ID, doc.Self.Addr, doc.Self.State, doc.Self.Epoch)
	for _, m := range doc.Members {
		heard := "-"
		if !m.LastHeard.IsZero() {
			heard = now.Sub(m.LastHeard).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", m.ID, m.Addr, m.State, m.Epoch, m.Incarnation, heard)
	}
	fmt.Fprintf(tw, "cluster %q: %d other members\n", doc.Cluster, len(doc.Members))
	return tw.Flush()
}
