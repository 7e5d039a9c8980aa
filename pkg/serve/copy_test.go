package serve_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
)

// seedBox appends n simple messages to mbox and returns their UIDs and
// bodies; message i gets flags[i%len(flags)].
func seedBox(t *testing.T, c *imapclient.Client, mbox string, n int, flags ...[]imap.Flag) ([]imap.UID, map[imap.UID][]byte) {
	t.Helper()
	createAll(t, c, mbox)
	var uids []imap.UID
	raws := map[imap.UID][]byte{}
	for i := range n {
		var fl []imap.Flag
		if len(flags) > 0 {
			fl = flags[i%len(flags)]
		}
		raw := simpleMessage(fmt.Sprintf("%s message %d", mbox, i), fmt.Sprintf("body %d", i))
		uid := appendMsg(t, c, mbox, raw, fl, fixedDate).UID
		uids = append(uids, uid)
		raws[uid] = raw
	}
	return uids, raws
}

// contents returns the selected mailbox's messages: UID -> bytes, flags.
func contents(t *testing.T, c *imapclient.Client) (map[imap.UID][]byte, map[imap.UID][]string) {
	t.Helper()
	bodies := map[imap.UID][]byte{}
	flags := map[imap.UID][]string{}
	for _, m := range fetchAll(t, c, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}) {
		bodies[m.UID] = m.BodySection[0].Bytes
		flags[m.UID] = flagSet(m.Flags)
	}
	return bodies, flags
}

func uidsOf(set imap.NumSet) []imap.UID {
	us, ok := set.(imap.UIDSet)
	if !ok {
		return nil
	}
	nums, _ := us.Nums()
	return nums
}

func TestCopy(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	src, raws := seedBox(t, c, "Source", 4, []imap.Flag{imap.FlagSeen, "$Label"}, nil)
	createAll(t, c, "Dest")
	dstApp := appendMsg(t, c, "Dest", simpleMessage("already there", "x"), nil, fixedDate)
	mustSelect(t, c, "Source", false)

	data, err := c.Copy(imap.SeqSetNum(2, 3, 4), "Dest").Wait()
	if err != nil {
		t.Fatalf("COPY: %v", err)
	}
	if data == nil || data.UIDValidity != dstApp.UIDValidity {
		t.Fatalf("COPYUID: %+v, want UIDVALIDITY %d", data, dstApp.UIDValidity)
	}
	gotSrc, gotDst := uidsOf(data.SourceUIDs), uidsOf(data.DestUIDs)
	if !slices.Equal(gotSrc, src[1:]) {
		t.Errorf("COPYUID source UIDs %v, want %v", gotSrc, src[1:])
	}
	if len(gotDst) != 3 || gotDst[0] <= dstApp.UID {
		t.Errorf("COPYUID destination UIDs %v, want 3 UIDs after %d", gotDst, dstApp.UID)
	}
	// The source is unchanged.
	bodies, _ := contents(t, c)
	if len(bodies) != 4 {
		t.Errorf("source has %d messages after COPY, want 4", len(bodies))
	}
	// The copies have the bytes and flags of their originals.
	_, srcFlags := contents(t, c)
	mustSelect(t, c, "Dest", false)
	dBodies, dFlags := contents(t, c)
	if len(dBodies) != 4 {
		t.Fatalf("Dest has %d messages, want 4", len(dBodies))
	}
	for i, d := range gotDst {
		s := gotSrc[i]
		if string(dBodies[d]) != string(raws[s]) {
			t.Errorf("copy UID %d of UID %d: bytes differ", d, s)
		}
		if !slices.Equal(dFlags[d], srcFlags[s]) {
			t.Errorf("copy UID %d of UID %d: flags %v, want %v", d, s, dFlags[d], srcFlags[s])
		}
	}

	// UID COPY within the same mailbox, and COPY from EXAMINE (allowed).
	data, err = c.Copy(imap.UIDSetNum(gotDst[0]), "Dest").Wait()
	if err != nil || data == nil || len(uidsOf(data.DestUIDs)) != 1 {
		t.Fatalf("UID COPY into the selected mailbox: %+v, %v", data, err)
	}
	mustSelect(t, c, "Source", true)
	if _, err := c.Copy(imap.SeqSetNum(1), "Dest").Wait(); err != nil {
		t.Errorf("COPY from an EXAMINEd mailbox: %v", err)
	}

	// A missing destination asks the client to create it.
	_, err = c.Copy(imap.SeqSetNum(1), "Nowhere").Wait()
	wantNo(t, "COPY to a missing mailbox", err, imap.ResponseCodeTryCreate)
	_, err = c.Copy(imap.UIDSetNum(src[0]), "Nowhere/Deeper").Wait()
	wantNo(t, "UID COPY to a missing mailbox", err, imap.ResponseCodeTryCreate)
	if _, err := c.Status("Nowhere", &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
		t.Errorf("COPY created the missing mailbox")
	}
}

func TestMove(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	c := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev.options())
	src, raws := seedBox(t, c, "From", 5, []imap.Flag{imap.FlagFlagged}, []imap.Flag{"$Keep"})
	createAll(t, c, "To")
	to := appendMsg(t, c, "To", simpleMessage("first", "x"), nil, fixedDate)
	mustSelect(t, c, "From", false)
	// A second session on the source sees the expunges.
	ev2 := newEvents()
	c2 := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev2.options())
	mustSelect(t, c2, "From", false)

	data, err := c.Move(imap.SeqSetNum(2, 4), "To").Wait()
	if err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	if data.UIDValidity != to.UIDValidity {
		t.Errorf("MOVE COPYUID validity %d, want %d", data.UIDValidity, to.UIDValidity)
	}
	gotSrc, gotDst := uidsOf(data.SourceUIDs), uidsOf(data.DestUIDs)
	if !slices.Equal(gotSrc, []imap.UID{src[1], src[3]}) || len(gotDst) != 2 {
		t.Fatalf("MOVE COPYUID: source %v, destination %v", gotSrc, gotDst)
	}
	// MOVE sends EXPUNGE for each message: 4 then 2 (or 2 then 3).
	_, expunges, _ := ev.snapshot()
	if !slices.Equal(expunges, []uint32{4, 2}) && !slices.Equal(expunges, []uint32{2, 3}) {
		t.Errorf("MOVE sent EXPUNGE %v, want two valid sequence numbers", expunges)
	}
	if n := c.Mailbox().NumMessages; n != 3 {
		t.Errorf("client count after MOVE: %d, want 3", n)
	}
	bodies, _ := contents(t, c)
	if len(bodies) != 3 || bodies[src[1]] != nil || bodies[src[3]] != nil {
		t.Errorf("source after MOVE: UIDs %v", keysUID(bodies))
	}
	// The other session learns of the expunges at its next command.
	if err := c2.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev2.waitFor(t, "EXPUNGE in the other session", func(_, expunges []uint32, _ []fetchEvent) bool { return len(expunges) == 2 })
	if n := c2.Mailbox().NumMessages; n != 3 {
		t.Errorf("other session's count after MOVE: %d, want 3", n)
	}
	// The moved messages are in To with their bytes and flags.
	mustSelect(t, c, "To", false)
	dBodies, dFlags := contents(t, c)
	for i, d := range gotDst {
		if string(dBodies[d]) != string(raws[gotSrc[i]]) {
			t.Errorf("moved UID %d: bytes differ", d)
		}
	}
	if !slices.Equal(dFlags[gotDst[0]], []string{"$keep"}) || !slices.Equal(dFlags[gotDst[1]], []string{"$keep"}) {
		t.Errorf("moved flags: %v", dFlags)
	}

	// UID MOVE, MOVE to a missing mailbox, MOVE from EXAMINE.
	data, err = c.Move(imap.UIDSetNum(gotDst[0]), "From").Wait()
	if err != nil || len(uidsOf(data.DestUIDs)) != 1 {
		t.Fatalf("UID MOVE back: %+v, %v", data, err)
	}
	_, err = c.Move(imap.SeqSetNum(1), "Nowhere").Wait()
	wantNo(t, "MOVE to a missing mailbox", err, imap.ResponseCodeTryCreate)
	mustSelect(t, c, "From", true)
	_, err = c.Move(imap.SeqSetNum(1), "To").Wait()
	wantNo(t, "MOVE from an EXAMINEd mailbox", err, "")
	if n := mustSelect(t, c, "From", false).NumMessages; n != 4 {
		t.Errorf("From has %d messages, want 4", n)
	}
}

func keysUID[V any](m map[imap.UID]V) []imap.UID {
	out := make([]imap.UID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestExpunge(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	// Messages 2, 4, 5, 7 are \Deleted.
	del := []imap.Flag{imap.FlagDeleted}
	uids, _ := seedBox(t, c, "Box", 8, nil, del, nil, del, del, nil, del, nil)
	mustSelect(t, c, "Box", false)

	// UID EXPUNGE only removes \Deleted messages within its set.
	seqs, err := c.UIDExpunge(imap.UIDSetNum(uids[0], uids[1], uids[2], uids[3])).Collect()
	if err != nil {
		t.Fatalf("UID EXPUNGE: %v", err)
	}
	if !slices.Equal(seqs, []uint32{4, 2}) && !slices.Equal(seqs, []uint32{2, 3}) {
		t.Errorf("UID EXPUNGE sent %v, want the sequence numbers of messages 2 and 4", seqs)
	}
	bodies, _ := contents(t, c)
	if want := []imap.UID{uids[0], uids[2], uids[4], uids[5], uids[6], uids[7]}; !slices.Equal(keysUID(bodies), want) {
		t.Errorf("after UID EXPUNGE: %v, want %v", keysUID(bodies), want)
	}

	// EXPUNGE removes the remaining \Deleted ones (5 and 7, now 3 and 5).
	seqs, err = c.Expunge().Collect()
	if err != nil {
		t.Fatalf("EXPUNGE: %v", err)
	}
	if !slices.Equal(seqs, []uint32{5, 3}) && !slices.Equal(seqs, []uint32{3, 4}) {
		t.Errorf("EXPUNGE sent %v", seqs)
	}
	bodies, _ = contents(t, c)
	if want := []imap.UID{uids[0], uids[2], uids[5], uids[7]}; !slices.Equal(keysUID(bodies), want) {
		t.Errorf("after EXPUNGE: %v, want %v", keysUID(bodies), want)
	}
	// Nothing left to expunge.
	if seqs, err := c.Expunge().Collect(); err != nil || len(seqs) != 0 {
		t.Errorf("second EXPUNGE: %v, %v", seqs, err)
	}
	// CLOSE expunges silently on SELECT.
	storeFlags(t, c, imap.SeqSetNum(1), imap.StoreFlagsAdd, true, imap.FlagDeleted)
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE: %v", err)
	}
	st, err := c.Status("Box", &imap.StatusOptions{NumMessages: true, NumDeleted: true}).Wait()
	if err != nil || *st.NumMessages != 3 || *st.NumDeleted != 0 {
		t.Errorf("after CLOSE: %+v, %v; want 3 messages, none deleted", st, err)
	}
}

// TestExamineIsReadOnly checks that nothing changes a mailbox opened with
// EXAMINE (go-imap does not enforce it: the session must).
func TestExamineIsReadOnly(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	uids, _ := seedBox(t, c, "RO", 3, []imap.Flag{imap.FlagDeleted}, nil)
	before := func() map[imap.UID][]string {
		mustSelect(t, c, "RO", true)
		_, f := contents(t, c)
		return f
	}()
	sel := mustSelect(t, c, "RO", true)
	if len(sel.PermanentFlags) != 0 {
		t.Errorf("EXAMINE PERMANENTFLAGS %v, want none", sel.PermanentFlags)
	}

	_, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	wantNo(t, "STORE on EXAMINE", err, "")
	_, err = c.Store(imap.UIDSetNum(uids[1]), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: nil}, nil).Collect()
	wantNo(t, "UID STORE on EXAMINE", err, "")
	_, err = c.Expunge().Collect()
	wantNo(t, "EXPUNGE on EXAMINE", err, "")
	_, err = c.UIDExpunge(imap.UIDSetNum(uids...)).Collect()
	wantNo(t, "UID EXPUNGE on EXAMINE", err, "")
	fetchAll(t, c, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	// CLOSE after EXAMINE expunges nothing (RFC 9051 §6.4.2).
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE after EXAMINE: %v", err)
	}

	mustSelect(t, c, "RO", true)
	_, after := contents(t, c)
	if len(after) != 3 {
		t.Fatalf("after CLOSE on EXAMINE: %d messages, want 3", len(after))
	}
	for u, f := range before {
		if !slices.Equal(after[u], f) {
			t.Errorf("UID %d flags changed on EXAMINE: %v -> %v", u, f, after[u])
		}
	}
	// The same commands work on SELECT.
	mustSelect(t, c, "RO", false)
	storeFlags(t, c, imap.SeqSetNum(2), imap.StoreFlagsAdd, true, imap.FlagSeen)
	if seqs, err := c.Expunge().Collect(); err != nil || len(seqs) != 2 {
		t.Errorf("EXPUNGE on SELECT: %v, %v; want 2 expunged", seqs, err)
	}
}
