package engine

import (
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/swim"
)

// swimCapTable is a capTable running SWIM with members 2..5 validated at
// their phantom addresses, epoch 10.
func swimCapTable(t *testing.T, keyed bool) (*membership, time.Time) {
	t.Helper()
	m := capTable()
	m.cfg.DirectLimit, m.cfg.Heartbeat = 2, 100*time.Millisecond
	if keyed {
		kr, err := NewKeyring(make([]byte, KeySize))
		if err != nil {
			t.Fatal(err)
		}
		m.cfg.Keyring = kr
	}
	now := time.Now()
	for i := 2; i <= 5; i++ {
		if ok, _ := m.validated(uint64(i), 10, phantom(i), phantom(i), 1, now); !ok {
			t.Fatalf("member %d not validated", i)
		}
	}
	m.mu.Lock()
	m.swimModeLocked(4, 0, now)
	on := m.swim != nil
	m.mu.Unlock()
	if !on {
		t.Fatal("4 live members over a DirectLimit of 2: no SWIM")
	}
	return m, now
}

func (m *membership) stateOf(id uint64) (MemberState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[id]
	if e == nil {
		return 0, false
	}
	return e.State, e.validated
}

// TestVouchRetiresRestartedMember: an authenticated update naming a new
// id, booted after the live member held at its address, is vouched for
// there, and the old id is retired (left) in the table and the machine,
// its news queued; news of a newcomer that booted no later than the
// member held there (a former self gossiped late) is not vouched for:
// the address must answer first.
func TestVouchRetiresRestartedMember(t *testing.T) {
	m, now := swimCapTable(t, true)
	stale := codec.Update{ID: 98, Epoch: 10, Addr: phantom(3), State: StateAlive, From: 2}
	if _, ch := m.update(&stale, true, now); ch != phantom(3) {
		t.Fatalf("a newcomer no newer than the live member there: challenge %v, want its address", ch)
	}
	if st, valid := m.stateOf(98); valid {
		t.Fatalf("stale newcomer vouched for (%v)", st)
	}
	if st, _ := m.stateOf(3); st != StateAlive {
		t.Fatalf("member 3 after stale news of its address: %v, want alive", st)
	}

	fresh := codec.Update{ID: 99, Epoch: 11, Addr: phantom(3), State: StateAlive, From: 2}
	if _, ch := m.update(&fresh, true, now); ch.IsValid() {
		t.Fatalf("restarted member vouched for: challenge %v, want none", ch)
	}
	if st, valid := m.stateOf(99); !valid || st != StateAlive {
		t.Fatalf("restarted member: %v validated %v, want alive and validated", st, valid)
	}
	if st, _ := m.stateOf(3); st != StateLeft {
		t.Fatalf("its former id: %v, want left", st)
	}
	m.mu.Lock()
	u, _ := m.swim.Get(3)
	newcomer, _ := m.swim.Get(99)
	m.mu.Unlock()
	if u.State != swim.Left || newcomer.State != swim.Alive {
		t.Fatalf("machine: former id %v, newcomer %v; want left and alive", u.State, newcomer.State)
	}
	if a, ok := m.viewMember(99); !ok || a != phantom(3) {
		t.Fatalf("newcomer not in the view at the address: %v %v", a, ok)
	}
	if _, ok := m.viewMember(3); ok {
		t.Fatal("former id still in the fan-out view")
	}
	ups := m.takeUpdates(nil, 64, 0)
	var left, alive bool
	for _, u := range ups {
		left = left || (u.ID == 3 && u.State == StateLeft)
		alive = alive || (u.ID == 99 && u.State == StateAlive)
	}
	if !left || !alive {
		t.Fatalf("queued news: former id's leave %v, newcomer's join %v; want both", left, alive)
	}

	// In plaintext nothing is vouched for: the address must answer.
	p, now := swimCapTable(t, false)
	if _, ch := p.update(&fresh, false, now); ch != phantom(3) {
		t.Fatalf("plaintext: challenge %v, want the address", ch)
	}
	if st, _ := p.stateOf(3); st != StateAlive {
		t.Fatalf("plaintext: member 3 %v, want alive", st)
	}
}

// TestGossipedLeaveChallengesInPlaintext: in plaintext a member another
// member says left is retired, whatever incarnation the news carries, and
// its address is challenged (a restarted node there answers with its new
// id); with a keyring no challenge goes out (news of the newcomer is
// vouched for and spread).
func TestGossipedLeaveChallengesInPlaintext(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		m, now := swimCapTable(t, keyed)
		refute := codec.Update{ID: 4, Epoch: 10, Incarnation: 3, Addr: phantom(4), State: StateAlive, From: 4}
		m.update(&refute, keyed, now)
		leave := codec.Update{ID: 4, Epoch: 10, Incarnation: 1, Addr: phantom(4), State: StateLeft, From: 2}
		_, ch := m.update(&leave, keyed, now)
		if st, _ := m.stateOf(4); st != StateLeft {
			t.Fatalf("keyed %v: member 4 after a leave at a lower incarnation: %v, want left", keyed, st)
		}
		want := phantom(4)
		if keyed {
			want = ch
			if ch.IsValid() {
				t.Fatalf("keyed: challenge %v after a gossiped leave, want none", ch)
			}
		}
		if ch != want {
			t.Fatalf("plaintext: challenge %v after a gossiped leave, want %v", ch, want)
		}
		if _, ch := m.update(&leave, keyed, now); ch.IsValid() {
			t.Fatalf("keyed %v: the same leave again asked for a challenge to %v", keyed, ch)
		}
	}
}

// TestRetiredMemberComesBack: a live member retired for a made-up id at
// its address (a key holder's word) refutes; its higher incarnation makes
// the table challenge its address, and its RESPONSE brings it back and
// retires the made-up id.
func TestRetiredMemberComesBack(t *testing.T) {
	m, now := swimCapTable(t, true)
	fake := codec.Update{ID: 99, Epoch: 11, Addr: phantom(3), State: StateAlive, From: 2}
	m.update(&fake, true, now)
	if st, _ := m.stateOf(3); st != StateLeft {
		t.Fatalf("member 3 after the made-up id: %v, want left", st)
	}
	refute := codec.Update{ID: 3, Epoch: 10, Incarnation: 1, Addr: phantom(3), State: StateAlive, From: 3}
	if _, ch := m.update(&refute, true, now); ch != phantom(3) {
		t.Fatalf("refutation of a retired member: challenge %v, want its address", ch)
	}
	if ok, _ := m.validated(3, 10, phantom(3), phantom(3), 2, now); !ok {
		t.Fatal("its RESPONSE was refused")
	}
	if st, _ := m.stateOf(3); st != StateAlive {
		t.Fatalf("member 3 after its RESPONSE: %v, want alive", st)
	}
	if st, _ := m.stateOf(99); st != StateLeft {
		t.Fatalf("the made-up id after the member's RESPONSE: %v, want left", st)
	}
	if a, ok := m.viewMember(3); !ok || a != phantom(3) {
		t.Fatalf("member 3 not back in the view: %v %v", a, ok)
	}
}
