package serve_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
)

// storeFlags runs (UID) STORE and returns the FETCH replies by UID.
func storeFlags(t *testing.T, c *imapclient.Client, set imap.NumSet, op imap.StoreFlagsOp, silent bool, flags ...imap.Flag) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Store(set, &imap.StoreFlags{Op: op, Silent: silent, Flags: flags}, nil).Collect()
	if err != nil {
		t.Fatalf("STORE %v %v %v: %v", set, op, flags, err)
	}
	return msgs
}

// flagsByUID FETCHes the flags of every message of the selected mailbox.
func flagsByUID(t *testing.T, c *imapclient.Client) map[imap.UID][]string {
	t.Helper()
	out := map[imap.UID][]string{}
	for _, m := range fetchAll(t, c, &imap.FetchOptions{Flags: true}) {
		out[m.UID] = flagSet(m.Flags)
	}
	return out
}

func TestStoreFlags(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	var uids []imap.UID
	for i := range 5 {
		uids = append(uids, appendMsg(t, c, "INBOX", simpleMessage(fmt.Sprintf("flags %d", i), "x"), nil, fixedDate).UID)
	}
	sel := mustSelect(t, c, "INBOX", false)
	if !slices.Contains(sel.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("PERMANENTFLAGS %v lacks \\*", sel.PermanentFlags)
	}

	type step struct {
		name   string
		set    imap.NumSet
		op     imap.StoreFlagsOp
		silent bool
		flags  []imap.Flag
		// want is the flags of every message after the step.
		want [5][]string
	}
	steps := []step{
		{"+FLAGS system and keyword", imap.SeqSetNum(1, 2), imap.StoreFlagsAdd, false, []imap.Flag{imap.FlagFlagged, "$Important"},
			[5][]string{{"$important", `\flagged`}, {"$important", `\flagged`}, {}, {}, {}}},
		{"+FLAGS all system flags", imap.SeqSetNum(3), imap.StoreFlagsAdd, false, []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft},
			[5][]string{{"$important", `\flagged`}, {"$important", `\flagged`}, {`\answered`, `\deleted`, `\draft`, `\flagged`, `\seen`}, {}, {}}},
		{"-FLAGS", imap.SeqSetNum(1, 3), imap.StoreFlagsDel, false, []imap.Flag{imap.FlagFlagged, "$important"},
			[5][]string{{}, {"$important", `\flagged`}, {`\answered`, `\deleted`, `\draft`, `\seen`}, {}, {}}},
		{"FLAGS replaces", imap.SeqSetNum(3), imap.StoreFlagsSet, false, []imap.Flag{"Work", imap.FlagSeen},
			[5][]string{{}, {"$important", `\flagged`}, {`\seen`, "work"}, {}, {}}},
		{"+FLAGS.SILENT", imap.SeqSet{imap.SeqRange{Start: 4, Stop: 0}}, imap.StoreFlagsAdd, true, []imap.Flag{"$Later"},
			[5][]string{{}, {"$important", `\flagged`}, {`\seen`, "work"}, {"$later"}, {"$later"}}},
		{"UID STORE", imap.UIDSetNum(uids[0], uids[4]), imap.StoreFlagsAdd, false, []imap.Flag{imap.FlagAnswered},
			[5][]string{{`\answered`}, {"$important", `\flagged`}, {`\seen`, "work"}, {"$later"}, {"$later", `\answered`}}},
		{"UID STORE FLAGS.SILENT empty", imap.UIDSetNum(uids[1]), imap.StoreFlagsSet, true, nil,
			[5][]string{{`\answered`}, {}, {`\seen`, "work"}, {"$later"}, {"$later", `\answered`}}},
		{"\\Recent is ignored", imap.SeqSetNum(4), imap.StoreFlagsAdd, false, []imap.Flag{`\Recent`},
			[5][]string{{`\answered`}, {}, {`\seen`, "work"}, {"$later"}, {"$later", `\answered`}}},
	}
	for _, st := range steps {
		replies := storeFlags(t, c, st.set, st.op, st.silent, st.flags...)
		if st.silent && len(replies) != 0 {
			t.Errorf("%s: .SILENT sent %d FETCH replies", st.name, len(replies))
		}
		if !st.silent {
			if len(replies) == 0 {
				t.Errorf("%s: no FETCH replies", st.name)
			}
			for _, r := range replies {
				if _, isUID := st.set.(imap.UIDSet); isUID && r.UID == 0 {
					t.Errorf("%s: UID STORE reply without UID", st.name)
				}
				i := int(r.SeqNum) - 1
				if g := flagSet(r.Flags); !slices.Equal(g, st.want[i]) {
					t.Errorf("%s: reply for message %d: FLAGS %v, want %v", st.name, r.SeqNum, g, st.want[i])
				}
			}
		}
		got := flagsByUID(t, c)
		for i, u := range uids {
			if !slices.Equal(got[u], st.want[i]) {
				t.Errorf("%s: message %d has %v, want %v", st.name, i+1, got[u], st.want[i])
			}
		}
	}
	// An unknown system flag is refused.
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{`\Bogus`}}, nil).Collect(); err == nil {
		t.Errorf("STORE +FLAGS (\\Bogus) succeeded")
	}
}

// TestManyKeywords uses more keywords in one mailbox than Maildir has
// file-name letters (26), and checks that all of them survive a restart.
func TestManyKeywords(t *testing.T) {
	t.Parallel()
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	c := dial(t, srv)
	createAll(t, c, "Tagged")
	const nKw = 40
	kw := func(i int) imap.Flag { return imap.Flag(fmt.Sprintf("tag%02d", i)) }
	var uids []imap.UID
	want := map[imap.UID][]string{}
	for i := range 8 {
		// Message i gets keywords i, i+8, i+16, ... plus one set at APPEND.
		uid := appendMsg(t, c, "Tagged", simpleMessage(fmt.Sprintf("kw %d", i), "x"), []imap.Flag{kw(i)}, fixedDate).UID
		uids = append(uids, uid)
		var names []string
		for k := i; k < nKw; k += 8 {
			names = append(names, string(kw(k)))
		}
		want[uid] = names
	}
	mustSelect(t, c, "Tagged", false)
	for i, uid := range uids {
		var flags []imap.Flag
		for k := i + 8; k < nKw; k += 8 {
			flags = append(flags, kw(k))
		}
		storeFlags(t, c, imap.UIDSetNum(uid), imap.StoreFlagsAdd, true, flags...)
	}
	check := func(stage string) {
		t.Helper()
		got := flagsByUID(t, c)
		for _, uid := range uids {
			if !slices.Equal(got[uid], want[uid]) {
				t.Errorf("%s: UID %d has %v, want %v", stage, uid, got[uid], want[uid])
			}
		}
	}
	check("after STORE")
	// Removing a keyword from one message keeps it on others.
	storeFlags(t, c, imap.UIDSetNum(uids[0]), imap.StoreFlagsDel, true, kw(32))
	want[uids[0]] = slices.DeleteFunc(want[uids[0]], func(s string) bool { return s == "tag32" })
	check("after -FLAGS")
	// A new SELECT lists every keyword in FLAGS.
	sel := mustSelect(t, c, "Tagged", false)
	for k := range nKw {
		if !slices.Contains(sel.Flags, kw(k)) {
			t.Errorf("SELECT FLAGS %v lacks %s", sel.Flags, kw(k))
			break
		}
	}
	// SEARCH KEYWORD finds keywords with and without a Maildir letter.
	for _, k := range []int{1, 30, 39} {
		got := searchUIDs(t, c, &imap.SearchCriteria{Flag: []imap.Flag{kw(k)}})
		if len(got) != 1 || got[0] != uids[k%8] {
			t.Errorf("SEARCH KEYWORD %s = %v, want [%d]", kw(k), got, uids[k%8])
		}
	}

	srv.Restart(t)
	c = dial(t, srv)
	sel2 := mustSelect(t, c, "Tagged", false)
	if sel2.UIDValidity != sel.UIDValidity {
		t.Errorf("UIDVALIDITY changed across restart: %d -> %d", sel.UIDValidity, sel2.UIDValidity)
	}
	check("after restart")
}
