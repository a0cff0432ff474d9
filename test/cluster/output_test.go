package cluster

import (
	"strconv"
	"strings"
	"time"
)

// parse reads one line of a node's stdout: meshnode's format (see
// internal/meshnode) or the `warpmesh node --print` lines the tests use.
func (n *node) parse(line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ok := true
	switch f[0] {
	case "self": // meshnode: self id epoch addr; CLI: self id addr epoch=n cluster=q
		n.id, ok = hexID(f, 1)
		if len(f) >= 4 && strings.HasPrefix(f[3], "epoch=") {
			n.epoch, _ = strconv.ParseUint(strings.TrimPrefix(f[3], "epoch="), 10, 64)
		} else if len(f) >= 3 {
			n.epoch, _ = strconv.ParseUint(f[2], 10, 64)
		}
	case "pub":
		var seq uint64
		var fr frame
		ok = scan(f[1:], &seq, &fr.count, &fr.first, &fr.last)
		if ok {
			addFrame(n.pubs, seq, fr)
			n.pubTotal += fr.count
		}
	case "inv":
		if key, isCLI := cliInvKey(line); isCLI { // the CLI's --print line
			ok = key != ""
			n.cliKeys[key] = true
			break
		}
		origin, okID := hexID(f, 1)
		var seq uint64
		var fr frame
		ok = okID && len(f) == 6 && scan(f[2:], &seq, &fr.count, &fr.first, &fr.last)
		if ok {
			m := n.invs[origin]
			if m == nil {
				m = map[uint64]*frame{}
				n.invs[origin] = m
			}
			addFrame(m, seq, fr)
		}
	case "ev": // ev time kind id epoch inc
		var e memberEvent
		var ns int64
		ok = len(f) == 6 && scan(f[1:2], &ns)
		if ok {
			e.at, e.kind = time.Unix(0, ns), f[2]
			e.id, ok = hexID(f, 3)
			ok = ok && scan(f[4:], &e.epoch, &e.incarnations)
		}
		if ok {
			n.addEvent(e)
		}
	case "event": // CLI: event kind id addr epoch=n incarnation=n
		if len(f) < 6 || f[1] == "gap" {
			return
		}
		e := memberEvent{at: time.Now(), kind: f[1]}
		e.id, ok = hexID(f, 2)
		e.epoch, _ = strconv.ParseUint(strings.TrimPrefix(f[4], "epoch="), 10, 64)
		if ok {
			n.addEvent(e)
		}
	case "gap": // gap time origin epoch first last missing reason
		var g gapEvent
		var ns int64
		ok = len(f) == 8 && scan(f[1:2], &ns)
		if ok {
			g.at = time.Unix(0, ns)
			g.origin, ok = hexID(f, 2)
			ok = ok && scan(f[3:7], &g.epoch, &g.first, &g.last, &g.missing)
			g.reason = f[7]
		}
		if ok {
			n.gaps = append(n.gaps, g)
		}
	case "published", "hwm", "stats", "drops", "members", "error", "bye":
		n.replies[f[0]] = append(n.replies[f[0]], line)
	default:
		// Unknown lines are ignored (the --print contract).
	}
	if !ok && len(n.bad) < 10 {
		n.bad = append(n.bad, line)
	}
}

func (n *node) addEvent(e memberEvent) {
	n.events = append(n.events, e)
	state := e.kind
	switch e.kind {
	case "join", "alive":
		state = "alive"
	case "leave":
		state = "left"
	}
	n.states[e.id] = state
}

func addFrame(m map[uint64]*frame, seq uint64, fr frame) {
	if old := m[seq]; old != nil { // the rest of a frame split by a flush
		old.count += fr.count
		old.first = min(old.first, fr.first)
		old.last = max(old.last, fr.last)
		return
	}
	m[seq] = &fr
}

func hexID(f []string, i int) (uint64, bool) {
	if i >= len(f) {
		return 0, false
	}
	v, err := strconv.ParseUint(f[i], 16, 64)
	return v, err == nil
}

// scan parses decimal fields into pointers to uint64, int64 or int.
func scan(f []string, dst ...any) bool {
	if len(f) < len(dst) {
		return false
	}
	for i, d := range dst {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			u, err2 := strconv.ParseUint(f[i], 10, 64)
			if err2 != nil {
				return false
			}
			v = int64(u)
		}
		switch p := d.(type) {
		case *uint64:
			*p = uint64(v)
		case *int64:
			*p = v
		case *int:
			*p = int(v)
		}
	}
	return true
}

// cliInvKey reads the key of a CLI --print line,
// "inv <origin> [name=value ...] exact|prefix <quoted key>": named fields
// are skipped, the key is the rest of the line (cmd/warpmesh/doc.go).
func cliInvKey(line string) (key string, ok bool) {
	f := strings.Fields(line)
	for i := 2; i < len(f); i++ {
		if strings.Contains(f[i], "=") {
			continue
		}
		if f[i] != "exact" && f[i] != "prefix" {
			return "", false
		}
		rest := strings.SplitN(line, " "+f[i]+" ", 2)
		if len(rest) != 2 {
			return "", true
		}
		k, err := strconv.Unquote(rest[1])
		if err != nil {
			return "", true
		}
		return k, true
	}
	return "", false
}
