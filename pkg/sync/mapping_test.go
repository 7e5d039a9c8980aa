package sync

import (
	"slices"
	"strings"
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
)

func TestParseMapping(t *testing.T) {
	for _, tc := range []struct {
		rule, name, want string
		matches          bool
	}{
		{`Sent Items=Sent`, "Sent Items", "Sent", true},
		{`Sent=Outbox`, "Sent Items", "", false}, // whole-name match only
		{`Old/(.*)=Archive/$1`, "Old/2019/Q1", "Archive/2019/Q1", true},
		{`(?P<y>\d{4})=Years/${y}`, "2024", "Years/2024", true},
		{`a\=b=c`, "a=b", "c", true},
		{`INBOX/(.+)=$1`, "INBOX/Lists", "Lists", true},
		{`Réunions=Meetings`, "Réunions", "Meetings", true},
	} {
		m, err := ParseMapping(tc.rule)
		if err != nil {
			t.Errorf("ParseMapping(%q): %v", tc.rule, err)
			continue
		}
		if m.String() != tc.rule {
			t.Errorf("String() = %q, want %q", m.String(), tc.rule)
		}
		got, ok := m.apply(tc.name)
		if ok != tc.matches || got != tc.want {
			t.Errorf("%q applied to %q = %q, %v; want %q, %v", tc.rule, tc.name, got, ok, tc.want, tc.matches)
		}
	}
	for _, bad := range []string{"", "Sent", "=Sent", "Sent=", "Sent=  ", "(unclosed=x", `a\=b`, "[z-a]=x"} {
		if _, err := ParseMapping(bad); err == nil {
			t.Errorf("ParseMapping(%q) succeeded", bad)
		}
	}
}

func mustMap(t *testing.T, rules ...string) []Mapping {
	t.Helper()
	var out []Mapping
	for _, r := range rules {
		m, err := ParseMapping(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func boxes(delim rune, spec ...string) []store.MailboxInfo {
	var out []store.MailboxInfo
	for _, s := range spec {
		name, attrs, _ := strings.Cut(s, " \\")
		info := store.MailboxInfo{Name: name, Delim: delim}
		if attrs != "" {
			for _, a := range strings.Split(attrs, " \\") {
				info.Attrs = append(info.Attrs, store.Attr(`\`+a))
			}
		}
		out = append(out, info)
	}
	return out
}

func TestMapFolders(t *testing.T) {
	dovecot := Namespace{Delim: '/'}
	courier := Namespace{Prefix: "INBOX.", Delim: '.'}
	type want struct {
		target, via string
		create      bool
		attrs       []store.Attr // CreateAttrs
	}
	tests := []struct {
		name    string
		src     []store.MailboxInfo
		srcNS   Namespace
		dst     []store.MailboxInfo
		dstNS   Namespace
		opts    Options
		want    map[string]want
		skip    map[string]string // source → Skip prefix
		wantErr string
	}{
		{
			name:  "Courier to Dovecot",
			src:   boxes('.', "INBOX", "INBOX.Sent", "INBOX.Archive", "INBOX.Archive.2019", "INBOX.Réunions", "INBOX.日本語", "INBOX.日本語.子", "INBOX.Team Notes"),
			srcNS: courier,
			dst:   boxes('/', "INBOX"),
			dstNS: dovecot,
			want: map[string]want{
				"INBOX":              {"INBOX", "name", false, nil},
				"INBOX.Sent":         {"Sent", "name", true, []store.Attr{store.AttrSent}},
				"INBOX.Archive":      {"Archive", "name", true, []store.Attr{store.AttrArchive}},
				"INBOX.Archive.2019": {"Archive/2019", "name", true, nil},
				"INBOX.Réunions":     {"Réunions", "name", true, nil},
				"INBOX.日本語":          {"日本語", "name", true, nil},
				"INBOX.日本語.子":        {"日本語/子", "name", true, nil},
				"INBOX.Team Notes":   {"Team Notes", "name", true, nil},
			},
		},
		{
			name:  "Dovecot to Courier",
			src:   boxes('/', "INBOX", "Sent \\Sent", "Archive/2019", "日本語/子", "INBOX/Lists", "v1.2"),
			srcNS: dovecot,
			dst:   boxes('.', "INBOX", "INBOX.Sent"),
			dstNS: courier,
			want: map[string]want{
				"INBOX":        {"INBOX", "name", false, nil},
				"Sent":         {"INBOX.Sent", "special-use", false, nil},
				"Archive/2019": {"INBOX.Archive.2019", "name", true, nil},
				"日本語/子":        {"INBOX.日本語.子", "name", true, nil},
				"INBOX/Lists":  {"INBOX.INBOX.Lists", "name", true, nil},
				"v1.2":         {"INBOX.v1_2", "name", true, nil},
			},
		},
		{
			name: "special use by attribute whatever the names",
			src:  boxes('/', "INBOX", "Gesendet \\Sent", "Corbeille \\Trash", "Brouillons \\Drafts", "Indésirables \\Junk"),
			dst:  boxes('/', "INBOX", "Sent Items \\Sent", "Deleted Items \\Trash", "Drafts \\Drafts"),
			want: map[string]want{
				"INBOX":        {"INBOX", "name", false, nil},
				"Gesendet":     {"Sent Items", "special-use", false, nil},
				"Corbeille":    {"Deleted Items", "special-use", false, nil},
				"Brouillons":   {"Drafts", "special-use", false, nil},
				"Indésirables": {"Indésirables", "name", true, []store.Attr{store.AttrJunk}},
			},
		},
		{
			name: "name heuristics on the source",
			src:  boxes('/', "INBOX", "Sent Items", "Sent Items/2019", "Deleted Items", "Spam", "Junk E-mail", "Drafts"),
			dst:  boxes('/', "INBOX", "Sent \\Sent", "Trash \\Trash", "Junk \\Junk"),
			want: map[string]want{
				"INBOX":           {"INBOX", "name", false, nil},
				"Sent Items":      {"Sent", "special-use", false, nil},
				"Sent Items/2019": {"Sent/2019", "parent", true, nil},
				"Deleted Items":   {"Trash", "special-use", false, nil},
				"Junk E-mail":     {"Junk", "special-use", false, nil}, // first \Junk in name order
				"Spam":            {"Spam", "name", true, nil},
				"Drafts":          {"Drafts", "name", true, []store.Attr{store.AttrDrafts}},
			},
		},
		{
			name: "Gmail source",
			src: boxes('/', "INBOX", "[Gmail] \\Noselect", "[Gmail]/Sent Mail", "[Gmail]/Spam", "[Gmail]/Trash",
				"[Gmail]/All Mail", "[Gmail]/Starred", "Personal"),
			dst: boxes('/', "INBOX", "Sent \\Sent", "Junk \\Junk", "Trash \\Trash", "Archive \\Archive"),
			want: map[string]want{
				"INBOX":             {"INBOX", "name", false, nil},
				"[Gmail]/Sent Mail": {"Sent", "special-use", false, nil},
				"[Gmail]/Spam":      {"Junk", "special-use", false, nil},
				"[Gmail]/Trash":     {"Trash", "special-use", false, nil},
				"[Gmail]/All Mail":  {"[Gmail]/All Mail", "name", true, []store.Attr{store.AttrAll}},
				"[Gmail]/Starred":   {"[Gmail]/Starred", "name", true, []store.Attr{store.AttrFlagged}},
				"Personal":          {"Personal", "name", true, nil},
			},
			skip: map[string]string{"[Gmail]": "not selectable"},
		},
		{
			name: "attributes win over names for one role",
			src:  boxes('/', "INBOX", "Sent", "Sent Messages \\Sent"),
			dst:  boxes('/', "INBOX"),
			want: map[string]want{
				"INBOX":         {"INBOX", "name", false, nil},
				"Sent":          {"Sent", "name", true, nil},
				"Sent Messages": {"Sent Messages", "name", true, []store.Attr{store.AttrSent}},
			},
		},
		{
			name: "target without attributes found by name",
			src:  boxes('/', "INBOX", "Sent Items \\Sent", "Deleted Messages"),
			dst:  boxes('/', "INBOX", "Sent", "Papierkorb"),
			want: map[string]want{
				"INBOX":            {"INBOX", "name", false, nil},
				"Sent Items":       {"Sent", "special-use", false, nil},
				"Deleted Messages": {"Papierkorb", "special-use", false, nil},
			},
		},
		{
			name:  "--map renames, before special use",
			src:   boxes('.', "INBOX", "INBOX.Old", "INBOX.Old.2019", "INBOX.Sent Items"),
			srcNS: courier,
			dst:   boxes('/', "INBOX", "Sent \\Sent"),
			opts:  Options{Maps: mustMap(t, `Old(/.*)?=Archive/Old$1`, `Sent Items=Mail/Sent Items`)},
			want: map[string]want{
				"INBOX":            {"INBOX", "name", false, nil},
				"INBOX.Old":        {"Archive/Old", "map", true, nil},
				"INBOX.Old.2019":   {"Archive/Old/2019", "map", true, nil},
				"INBOX.Sent Items": {"Mail/Sent Items", "map", true, nil}, // \Sent exists on the target
			},
		},
		{
			name: "include and exclude",
			src:  boxes('/', "INBOX", "Projects", "Projects/2024", "Projects/2024/Q1", "Trash", "Lists/Go", "Lists/Rust"),
			dst:  boxes('/', "INBOX"),
			opts: Options{Include: []string{"INBOX", "Projects*", "Lists/%"}, Exclude: []string{"%/2024/*", "Lists/Rust"}},
			want: map[string]want{
				"INBOX":         {"INBOX", "name", false, nil},
				"Projects":      {"Projects", "name", true, nil},
				"Projects/2024": {"Projects/2024", "name", true, nil},
				"Lists/Go":      {"Lists/Go", "name", true, nil},
			},
			skip: map[string]string{"Projects/2024/Q1": "excluded", "Trash": "not included", "Lists/Rust": "excluded"},
		},
		{
			name:  "patterns see canonical names and listed names",
			src:   boxes('.', "INBOX", "INBOX.Trash", "INBOX.Spam", "INBOX.Work"),
			srcNS: courier,
			dst:   boxes('/', "INBOX"),
			opts:  Options{Exclude: []string{"Trash", "INBOX.Spam"}},
			want: map[string]want{
				"INBOX":      {"INBOX", "name", false, nil},
				"INBOX.Work": {"Work", "name", true, nil},
			},
			skip: map[string]string{"INBOX.Trash": "excluded", "INBOX.Spam": "excluded"},
		},
		{
			name:    "two folders onto one target",
			src:     boxes('/', "INBOX", "A", "B"),
			dst:     boxes('/', "INBOX"),
			opts:    Options{Maps: mustMap(t, `A|B=Both`)},
			wantErr: `"A" and "B" both map to "Both"`,
		},
		{
			name:    "a second Sent folder landing on the special-use target",
			src:     boxes('/', "INBOX", "Sent", "Sent Items \\Sent"),
			dst:     boxes('/', "INBOX", "Sent \\Sent"),
			wantErr: `"Sent" and "Sent Items" both map to "Sent"`,
		},
		{
			name:    "map to an empty level",
			src:     boxes('/', "INBOX", "A"),
			dst:     boxes('/', "INBOX"),
			opts:    Options{Maps: mustMap(t, `A=X//Y`)},
			wantErr: "empty level",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.srcNS.Delim == 0 {
				tc.srcNS = dovecot
			}
			if tc.dstNS.Delim == 0 {
				tc.dstNS = dovecot
			}
			got, err := MapFolders(tc.src, tc.srcNS, tc.dst, tc.dstNS, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.src) {
				t.Errorf("got %d folders, want %d", len(got), len(tc.src))
			}
			for _, fm := range got {
				if fm.Skip != "" {
					if p, ok := tc.skip[fm.Source]; !ok || !strings.HasPrefix(fm.Skip, p) {
						t.Errorf("%q skipped (%s), want %q", fm.Source, fm.Skip, p)
					}
					continue
				}
				w, ok := tc.want[fm.Source]
				if !ok {
					t.Errorf("%q → %q not expected", fm.Source, fm.Target)
					continue
				}
				if fm.Target != w.target || fm.Via != w.via || fm.Create != w.create || !slices.Equal(fm.CreateAttrs, w.attrs) {
					t.Errorf("%q → %q via %s create=%v attrs=%v; want %q via %s create=%v attrs=%v",
						fm.Source, fm.Target, fm.Via, fm.Create, fm.CreateAttrs, w.target, w.via, w.create, w.attrs)
				}
			}
			for s := range tc.want {
				if !slices.ContainsFunc(got, func(fm FolderMap) bool { return fm.Source == s && fm.Skip == "" }) {
					t.Errorf("%q missing from the result", s)
				}
			}
		})
	}
}

func TestGuessRole(t *testing.T) {
	for name, want := range map[string]store.Attr{
		"Sent": store.AttrSent, "sent items": store.AttrSent, "Sent Messages": store.AttrSent,
		"[Gmail]/Sent Mail": store.AttrSent, "[Google Mail]/Sent Mail": store.AttrSent, "INBOX/Sent": store.AttrSent,
		"Deleted Items": store.AttrTrash, "Trash": store.AttrTrash, "Spam": store.AttrJunk, "Junk E-mail": store.AttrJunk,
		"Drafts": store.AttrDrafts, "Archive": store.AttrArchive, "[Gmail]/All Mail": store.AttrAll,
		"Éléments envoyés": store.AttrSent, "Gelöschte Elemente": store.AttrTrash,
		"Projects/Sent": "", "Sent/2019": "", "Inbox": "", "Sentinel": "",
	} {
		if got := guessRole(strings.Split(name, "/")); got != want {
			t.Errorf("guessRole(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNamespaceRoundTrip(t *testing.T) {
	courier := Namespace{Prefix: "INBOX.", Delim: '.'}
	dovecot := Namespace{Delim: '/'}
	for _, name := range []string{"INBOX", "INBOX.Sent", "INBOX.a.b.c", "INBOX.日本語.子", "INBOX.INBOX.x"} {
		lv := courier.levels(name, '.')
		d := dovecot.name(lv)
		back := courier.name(dovecot.levels(d, '/'))
		if back != name {
			t.Errorf("%q → %q → %q", name, d, back)
		}
	}
	if got := courier.levels("inbox.Sent", '.'); !slices.Equal(got, []string{"Sent"}) {
		t.Errorf("lower-case prefix: %q", got)
	}
	// A prefix given without its delimiter.
	if got := (Namespace{Prefix: "INBOX", Delim: '.'}).levels("INBOX.Sent", '.'); !slices.Equal(got, []string{"Sent"}) {
		t.Errorf("prefix without delimiter: %q", got)
	}
}

func TestNormalizeMessageID(t *testing.T) {
	for in, want := range map[string]string{
		"<a@b>": "<a@b>", "a@b": "<a@b>", " <a@b> ": "<a@b>", "\r\n <a@b>": "<a@b>",
		"<a@b> (comment)": "<a@b>", "": "", "<>": "", "  ": "",
	} {
		if got := normalizeMessageID(in); got != want {
			t.Errorf("normalizeMessageID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderSum(t *testing.T) {
	sum := func(s string) string {
		b, err := headerSum(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a := sum("Subject: x\r\nFrom: y\r\n\r\nbody")
	for _, same := range []string{
		"Subject: x\r\nFrom: y\r\n\r\nother body",
		"Subject: x\r\nFrom: y\r\n\r\n",
		"Subject: x\r\nFrom: y\r\n",
		"Subject: x\nFrom: y\n\nbody",
	} {
		if sum(same) != a {
			t.Errorf("header sum of %q differs", same)
		}
	}
	if sum("Subject: z\r\nFrom: y\r\n\r\nbody") == a {
		t.Error("different headers, same sum")
	}
	// A long line split by the buffer right before its LF is not the end.
	long := "X-Long: " + strings.Repeat("a", 16<<10-9) + "\r\nSubject: 1\r\n\r\n"
	if sum(long) == sum("X-Long: "+strings.Repeat("a", 16<<10-9)+"\r\nSubject: 2\r\n\r\n") {
		t.Error("header sum stopped inside a long line")
	}
}
