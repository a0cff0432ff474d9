//go:build race

package adversary

// raceEnabled: the race detector slows the node several times over, so
// floods are sized to what it can still process (an attacker sending more
// than a node can read overflows its socket buffer, legitimate datagrams
// included: no protocol can promise latency then).
const raceEnabled = true
