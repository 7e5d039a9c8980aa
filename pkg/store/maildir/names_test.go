package maildir

import (
	"errors"
	"strings"
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
)

func TestDirName(t *testing.T) {
	for _, c := range []struct{ name, dir string }{
		{"INBOX", ""},
		{"Sent", ".Sent"},
		{"Archive/2019", ".Archive.2019"},
		{"日本語/子", ".&ZeVnLIqe-.&W1A-"},
		{"Réunions", ".R&AOk-unions"},
		{"Q&A", ".Q&-A"},
		{"Team Notes", ".Team Notes"},
		{"INBOX/Child", ".INBOX.Child"},
		{"Projects/2024/Q1/Reports/Final", ".Projects.2024.Q1.Reports.Final"},
	} {
		if got := dirName(c.name); got != c.dir {
			t.Errorf("dirName(%q) = %q, want %q", c.name, got, c.dir)
		}
		if c.dir == "" {
			continue
		}
		got, ok := nameFromDir(c.dir)
		if !ok || got != c.name {
			t.Errorf("nameFromDir(%q) = %q, %v; want %q", c.dir, got, ok, c.name)
		}
	}
}

func TestNameFromDirRejects(t *testing.T) {
	for _, dir := range []string{
		"", ".", "..", "cur", "new", "tmp", "Sent", // not folders
		"..Sent", ".Sent.", ".Sent..Child", // empty levels
		".&ZeVn", ".Caf\xc3\xa9", // bad modified UTF-7
		".a*b", ".100%", // wildcards
		".back\\slash",
		".&AAA-",   // NUL
		".&AAo-",   // control character
		".INBOX",   // INBOX itself lives in the root
		".inbox.x", // would be listed as a name that opens another directory
		".&AOl-",   // a non-canonical spelling of "é"
		".&AOk-&AOk-",
	} {
		if name, ok := nameFromDir(dir); ok {
			t.Errorf("nameFromDir(%q) = %q, want rejection", dir, name)
		}
	}
}

func TestValidateNameAccepts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"inbox", "INBOX"},
		{"InBoX", "INBOX"},
		{"inbox/Child", "INBOX/Child"},
		{"Sent", "Sent"},
		{"Inboxes", "Inboxes"},
		{"Work/inbox", "Work/inbox"},
		{"Réunions", "Réunions"},
		{"日本語/子", "日本語/子"},
		{"Q&A", "Q&A"},
		{"&-", "&-"},
		{"Team Notes", "Team Notes"},
		{" leading and trailing ", " leading and trailing "},
		{"emoji 📬", "emoji 📬"},
		{"a~b!c#d$e+f,g", "a~b!c#d$e+f,g"},
		{strings.Repeat("x", 200), strings.Repeat("x", 200)},
		{strings.TrimSuffix(strings.Repeat("a/", maxDepth), "/"), strings.TrimSuffix(strings.Repeat("a/", maxDepth), "/")},
	} {
		got, err := ValidateName(c.in)
		if err != nil || got != c.want {
			t.Errorf("ValidateName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestValidateNameRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"..",
		".",
		"a/../b",
		"a/./b",
		"../etc",
		"Sent.Old", // '.' is the Maildir++ level separator
		".hidden",
		"/absolute",
		"/",
		"a//b",
		"a/",
		"a\x00b",
		"a\nb",
		"a\rb",
		"a\tb",
		"a\x7fb",
		"a\u0085b", // C1 control
		"back\\slash",
		"a*",
		"50%",
		"caf\xe9", // not UTF-8
		strings.Repeat("x", maxNameLen+1),
		strings.Repeat("x", 256),             // one level too long
		strings.Repeat("日", 80),              // too long once encoded
		strings.Repeat("a/", maxDepth) + "a", // too deep
		strings.Repeat("x", 150) + "/" + strings.Repeat("y", 150), // directory name too long
	} {
		got, err := ValidateName(in)
		if err == nil {
			t.Errorf("ValidateName(%q) = %q, want an error", in, got)
			continue
		}
		var ne *store.NameError
		if !errors.As(err, &ne) {
			t.Errorf("ValidateName(%q): error %T %v, want *store.NameError", in, err, err)
		}
	}
}

func TestLongNamesCreatable(t *testing.T) {
	// Every accepted name must be creatable: Maildir++ stores the whole
	// hierarchy in one directory name.
	s := openTestStore(t, t.TempDir(), Options{NoSync: true})
	for _, name := range []string{
		strings.Repeat("x", 200),
		strings.Repeat("日", 20),
		strings.Repeat("y", 120) + "/" + strings.Repeat("z", 120),
		strings.Repeat("y", 150) + "/" + strings.Repeat("z", 150),
		strings.Repeat("日", 40) + "/" + strings.Repeat("本", 40),
		strings.TrimSuffix(strings.Repeat("ab/", maxDepth), "/"),
	} {
		if _, err := ValidateName(name); err != nil {
			continue
		}
		if err := s.Create(t.Context(), name, nil); err != nil {
			t.Errorf("Create(%.40q...) of a valid name: %v", name, err)
		}
	}
}

func TestInboxCaseFolding(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{NoSync: true})
	for _, n := range []string{"inbox", "Inbox", "INBOX", "iNbOx"} {
		mb, err := s.OpenMailbox(t.Context(), n)
		if err != nil {
			t.Fatalf("Open(%q): %v", n, err)
		}
		if mb.Name() != "INBOX" {
			t.Errorf("Open(%q).Name() = %q", n, mb.Name())
		}
		checkClose(t, mb)
	}
	if err := s.Create(t.Context(), "inbox", nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create(inbox): %v, want ErrExists", err)
	}
	if err := s.Create(t.Context(), "inbox/Sub", nil); err != nil {
		t.Fatalf("Create(inbox/Sub): %v", err)
	}
	infos, _ := s.List(t.Context())
	var names []string
	for _, mi := range infos {
		names = append(names, mi.Name)
	}
	if strings.Join(names, ",") != "INBOX,INBOX/Sub" {
		t.Errorf("List = %v, want [INBOX INBOX/Sub]", names)
	}
	// A folder called "Inbox" below another is an ordinary name.
	if err := s.Create(t.Context(), "Work/Inbox", nil); err != nil {
		t.Fatalf("Create(Work/Inbox): %v", err)
	}
	mb, err := s.OpenMailbox(t.Context(), "Work/Inbox")
	if err != nil || mb.Name() != "Work/Inbox" {
		t.Fatalf("Open(Work/Inbox) = %v, %v", mb, err)
	}
	checkClose(t, mb)
}
