package sync

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/imapctl/imapctl/pkg/store"
)

// Namespace is how a store spells mailbox names: the prefix of its personal
// namespace (RFC 2342; "INBOX." on Courier and Cyrus, "" elsewhere) and its
// hierarchy delimiter.
type Namespace struct {
	Prefix string
	Delim  rune
}

// NamespaceOf returns the namespace of s: its Delimiter, and its
// PersonalPrefix when it implements store.Namespacer.
func NamespaceOf(s store.Store) Namespace {
	ns := Namespace{Delim: s.Delimiter()}
	if n, ok := s.(store.Namespacer); ok {
		ns.Prefix = n.PersonalPrefix()
	}
	return ns
}

// prefix returns the namespace prefix, ending with the delimiter when it
// is not empty.
func (ns Namespace) prefix() string {
	p := ns.Prefix
	if p != "" && ns.Delim != 0 && !strings.HasSuffix(p, string(ns.Delim)) {
		p += string(ns.Delim)
	}
	return p
}

// levels splits a mailbox name as listed into its hierarchy levels, with
// the personal-namespace prefix removed and INBOX spelt "INBOX": Courier's
// "INBOX.Sent.2024" and Dovecot's "Sent/2024" both become [Sent 2024].
func (ns Namespace) levels(name string, delim rune) []string {
	if strings.EqualFold(name, "INBOX") {
		return []string{"INBOX"}
	}
	if delim == 0 {
		delim = ns.Delim
	}
	rest := name
	if p := ns.prefix(); p != "" && len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
		rest = name[len(p):]
	}
	var lv []string
	if delim == 0 {
		lv = []string{rest}
	} else {
		lv = strings.Split(rest, string(delim))
	}
	if strings.EqualFold(lv[0], "INBOX") {
		lv[0] = "INBOX"
	}
	return lv
}

// name joins hierarchy levels into a mailbox name of this namespace. A
// level that contains the delimiter has it replaced by delimSubstitute,
// since it cannot be represented otherwise.
func (ns Namespace) name(levels []string) string {
	if len(levels) == 1 && levels[0] == "INBOX" {
		return "INBOX"
	}
	if ns.Delim == 0 {
		return ns.prefix() + strings.Join(levels, "")
	}
	d := string(ns.Delim)
	out := make([]string, len(levels))
	for i, l := range levels {
		out[i] = strings.ReplaceAll(l, d, delimSubstitute)
	}
	return ns.prefix() + strings.Join(out, d)
}

// delimSubstitute replaces the target's hierarchy delimiter inside a level
// name that contains it ("v1.2" going to a server whose delimiter is '.').
const delimSubstitute = "_"

// canonicalDelim separates levels in canonical names, the names that
// --map, --include and --exclude see.
const canonicalDelim = "/"

// Mapping is one folder rename rule, "REGEX=REPLACEMENT". The regular
// expression (RE2 syntax) must match the whole canonical source name; the
// replacement may use $1, ${name} and so on. Canonical names have the
// personal-namespace prefix removed and '/' between levels, whatever the
// server uses: "INBOX.Sent.2024" on Courier is "Sent/2024".
type Mapping struct {
	re   *regexp.Regexp
	repl string
	src  string
}

// ParseMapping parses a "REGEX=REPLACEMENT" rule. The first '=' not
// preceded by a backslash separates the two; write `\=` for an '=' inside
// the regular expression.
func ParseMapping(s string) (Mapping, error) {
	sep := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++ // skip the escaped character
			continue
		}
		if s[i] == '=' {
			sep = i
			break
		}
	}
	if sep < 0 {
		return Mapping{}, fmt.Errorf("folder mapping %q: want REGEX=REPLACEMENT", s)
	}
	expr, repl := s[:sep], s[sep+1:]
	if expr == "" {
		return Mapping{}, fmt.Errorf("folder mapping %q: empty regular expression", s)
	}
	if strings.TrimSpace(repl) == "" {
		return Mapping{}, fmt.Errorf("folder mapping %q: empty replacement", s)
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return Mapping{}, fmt.Errorf("folder mapping %q: %w", s, err)
	}
	return Mapping{re: re, repl: repl, src: s}, nil
}

// String returns the rule as it was parsed.
func (m Mapping) String() string { return m.src }

// apply returns the mapped canonical name and whether the rule matched.
func (m Mapping) apply(name string) (string, bool) {
	if m.re == nil {
		return "", false
	}
	idx := m.re.FindStringSubmatchIndex(name)
	if idx == nil {
		return "", false
	}
	return string(m.re.ExpandString(nil, m.repl, name, idx)), true
}

// FolderMap says where one source folder goes.
type FolderMap struct {
	// Source is the folder's name on the source store.
	Source string `json:"source"`
	// Target is its name on the target store.
	Target string `json:"target"`
	// Via says how Target was chosen: "name" (translated name), "map" (a
	// --map rule), "special-use" (the target's folder with the same
	// special-use attribute), "parent" (under a parent that went to a
	// special-use folder).
	Via string `json:"via"`
	// SpecialUse holds the source's special-use attributes, or the one
	// guessed from its name when the source reports none.
	SpecialUse []store.Attr `json:"special_use,omitempty"`
	// Create is true when the target does not exist yet.
	Create bool `json:"create,omitempty"`
	// CreateAttrs are the special-use attributes given to the new folder:
	// those of the source that no target folder has yet.
	CreateAttrs []store.Attr `json:"create_attrs,omitempty"`
	// Skip, when not empty, says why the folder is not synchronised.
	Skip string `json:"skip,omitempty"`

	levels []string // canonical source levels
}

// roleNames are the names (compared case-insensitively) that identify a
// special-use folder on servers without RFC 6154 attributes.
var roleNames = map[store.Attr][]string{
	store.AttrSent: {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Sent-Mail", "Sent Email",
		"Gesendet", "Gesendete Elemente", "Gesendete Objekte", "Envoyés", "Éléments envoyés", "Messages envoyés",
		"Enviados", "Elementos enviados", "Posta inviata", "Inviati", "Verzonden", "Verzonden items",
		"Skickat", "Wysłane", "Отправленные"},
	store.AttrTrash: {"Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin", "Papierkorb",
		"Gelöschte Elemente", "Gelöschte Objekte", "Corbeille", "Éléments supprimés", "Papelera",
		"Elementos eliminados", "Cestino", "Prullenbak", "Verwijderde items", "Kosz", "Корзина", "Удаленные"},
	store.AttrJunk: {"Junk", "Spam", "Junk E-mail", "Junk Email", "Junk Mail", "Junk-E-Mail", "Bulk Mail",
		"Courrier indésirable", "Correo no deseado", "Posta indesiderata", "Ongewenste e-mail", "Спам"},
	store.AttrDrafts:  {"Drafts", "Draft", "Entwürfe", "Brouillons", "Borradores", "Bozze", "Concepten", "Черновики"},
	store.AttrArchive: {"Archive", "Archives", "Archiv", "Archivo", "Archivio", "Archief"},
	store.AttrAll:     {"All Mail"},
	store.AttrFlagged: {"Starred", "Flagged"},
}

// roleContainers are parents under which a folder's name still tells its
// role: Gmail's "[Gmail]/Sent Mail", and "INBOX/Sent" on servers that keep
// every folder under INBOX.
var roleContainers = []string{"[Gmail]", "[Google Mail]", "INBOX"}

// guessRole returns the special-use attribute a folder's canonical levels
// suggest, or "".
func guessRole(levels []string) store.Attr {
	var leaf string
	switch {
	case len(levels) == 1:
		leaf = levels[0]
	case len(levels) == 2 && containsFold(roleContainers, levels[0]):
		leaf = levels[1]
	default:
		return ""
	}
	leaf = strings.Join(strings.Fields(leaf), " ")
	for _, a := range store.SpecialUse {
		if containsFold(roleNames[a], leaf) {
			return a
		}
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// specialUse returns the special-use attributes of m, canonically spelt.
func specialUse(m store.MailboxInfo) []store.Attr {
	var out []store.Attr
	for _, a := range store.SpecialUse {
		if m.Has(a) {
			out = append(out, a)
		}
	}
	return out
}

func selectable(m store.MailboxInfo) bool {
	return !m.Has(store.AttrNoSelect) && !m.Has(`\NonExistent`)
}

// glob is an --include/--exclude pattern: '*' matches anything, '%'
// anything within one level.
type glob struct {
	src string
	re  *regexp.Regexp
}

func compileGlob(p string) glob {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '%':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return glob{src: p, re: regexp.MustCompile(b.String())}
}

func matchAny(gs []glob, names ...string) (string, bool) {
	for _, g := range gs {
		for _, n := range names {
			if g.re.MatchString(n) {
				return g.src, true
			}
		}
	}
	return "", false
}

// MapFolders decides where each source folder goes; it does no I/O.
//
// A name is translated level by level: the source's personal-namespace
// prefix is removed, levels are split at the source's delimiter and joined
// with the target's, behind the target's prefix ("INBOX.Sent.2024" on
// Courier becomes "Sent/2024" on Dovecot, and back). INBOX is INBOX on
// both sides.
//
// In order of precedence, a folder's target is:
//  1. the result of the first --map rule (opts.Maps) matching its canonical
//     name;
//  2. for a folder with a special-use attribute (or, without attributes, a
//     well-known name such as "Sent Items", "[Gmail]/Sent Mail", "Deleted
//     Items" or "Spam"), the target's folder with that attribute, or with a
//     well-known name for it; the first source folder of each kind wins,
//     those with attributes before those without;
//  3. below a folder redirected by rule 2, the same path below its target
//     ("Sent Items/2019" goes to "Sent/2019" when "Sent Items" goes to
//     "Sent");
//  4. the translated name.
//
// Include and exclude patterns (opts.Include, opts.Exclude; '*' matches
// anything, '%' anything but '/') are matched against the canonical
// name and the name as listed; a folder is kept when it matches an include
// pattern (or there are none) and no exclude pattern. \Noselect folders
// are skipped: creating a child creates its parents.
//
// The result lists every source folder, sorted by source name, skipped
// ones with Skip set. Two folders going to one target is an error.
func MapFolders(src []store.MailboxInfo, srcNS Namespace, dst []store.MailboxInfo, dstNS Namespace, opts Options) ([]FolderMap, error) {
	include := make([]glob, len(opts.Include))
	for i, p := range opts.Include {
		include[i] = compileGlob(p)
	}
	exclude := make([]glob, len(opts.Exclude))
	for i, p := range opts.Exclude {
		exclude[i] = compileGlob(p)
	}

	// Target folders: by name, and the first with each special-use
	// attribute (by attribute, else by well-known name).
	type target struct {
		name   string
		levels []string
	}
	dstExists := map[string]bool{}
	dstRole := map[store.Attr]target{}
	dstGuess := map[store.Attr]target{}
	dstHasAttr := map[store.Attr]bool{}
	for _, m := range dst {
		if !selectable(m) {
			continue
		}
		dstExists[m.Name] = true
		t := target{m.Name, dstNS.levels(m.Name, m.Delim)}
		for _, a := range specialUse(m) {
			dstHasAttr[a] = true
			if _, ok := dstRole[a]; !ok {
				dstRole[a] = t
			}
		}
		if r := guessRole(t.levels); r != "" && len(specialUse(m)) == 0 {
			if _, ok := dstGuess[r]; !ok {
				dstGuess[r] = t
			}
		}
	}
	findRole := func(a store.Attr) (target, bool) {
		if t, ok := dstRole[a]; ok {
			return t, true
		}
		t, ok := dstGuess[a]
		return t, ok
	}

	sorted := append([]store.MailboxInfo(nil), src...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	out := make([]FolderMap, 0, len(sorted))
	guessed := map[int]bool{} // index in out → SpecialUse guessed from the name
	for _, m := range sorted {
		fm := FolderMap{Source: m.Name, levels: srcNS.levels(m.Name, m.Delim)}
		canon := strings.Join(fm.levels, canonicalDelim)
		switch {
		case !selectable(m):
			fm.Skip = "not selectable"
		case len(include) > 0:
			if _, ok := matchAny(include, canon, m.Name); !ok {
				fm.Skip = "not included"
			}
		}
		if fm.Skip == "" {
			if p, ok := matchAny(exclude, canon, m.Name); ok {
				fm.Skip = fmt.Sprintf("excluded by %q", p)
			}
		}
		fm.SpecialUse = specialUse(m)
		if len(fm.SpecialUse) == 0 {
			if r := guessRole(fm.levels); r != "" {
				fm.SpecialUse = []store.Attr{r}
				guessed[len(out)] = true
			}
		}
		out = append(out, fm)
	}

	// Rule 1: --map.
	targetLevels := make([][]string, len(out))
	for i := range out {
		fm := &out[i]
		if fm.Skip != "" {
			continue
		}
		canon := strings.Join(fm.levels, canonicalDelim)
		for _, mp := range opts.Maps {
			if to, ok := mp.apply(canon); ok {
				lv := strings.Split(to, canonicalDelim)
				for _, l := range lv {
					if l == "" {
						return nil, fmt.Errorf("folder %q: --map %q gives %q, which has an empty level", fm.Source, mp, to)
					}
				}
				if strings.EqualFold(lv[0], "INBOX") {
					lv[0] = "INBOX"
				}
				targetLevels[i], fm.Via = lv, "map"
				break
			}
		}
	}
	// Rule 2: special use, folders with attributes first.
	claimer := map[store.Attr]int{}     // role → index of the folder that holds it
	redirected := map[string][]string{} // canonical source → target levels
	for pass := 0; pass < 2; pass++ {
		for i := range out {
			fm := &out[i]
			if fm.Skip != "" || fm.Via != "" || len(fm.SpecialUse) == 0 || guessed[i] != (pass == 1) ||
				(len(fm.levels) == 1 && fm.levels[0] == "INBOX") {
				continue
			}
			role := fm.SpecialUse[0]
			if _, ok := claimer[role]; ok {
				continue
			}
			claimer[role] = i
			if t, ok := findRole(role); ok {
				targetLevels[i], fm.Via = t.levels, "special-use"
				fm.Target = t.name
				redirected[strings.Join(fm.levels, canonicalDelim)] = t.levels
			}
		}
	}
	// Rules 3 and 4.
	for i := range out {
		fm := &out[i]
		if fm.Skip != "" || fm.Via != "" {
			continue
		}
		targetLevels[i], fm.Via = fm.levels, "name"
		for n := len(fm.levels) - 1; n > 0; n-- {
			if t, ok := redirected[strings.Join(fm.levels[:n], canonicalDelim)]; ok {
				targetLevels[i] = append(append([]string(nil), t...), fm.levels[n:]...)
				fm.Via = "parent"
				break
			}
		}
	}

	// Names, creation and collisions.
	assigned := map[store.Attr]bool{}
	bySource := map[string]string{}
	var errs []error
	for i := range out {
		fm := &out[i]
		if fm.Skip != "" {
			continue
		}
		if fm.Target == "" {
			fm.Target = dstNS.name(targetLevels[i])
		}
		if prev, ok := bySource[fm.Target]; ok {
			errs = append(errs, fmt.Errorf("folders %q and %q both map to %q: rename one with --map or leave one out with --exclude", prev, fm.Source, fm.Target))
			continue
		}
		bySource[fm.Target] = fm.Source
		if !dstExists[fm.Target] && fm.Target != "INBOX" {
			fm.Create = true
			for _, a := range fm.SpecialUse {
				if c, ok := claimer[a]; ok && c != i {
					continue // another folder holds this role
				}
				if !dstHasAttr[a] && !assigned[a] {
					assigned[a] = true
					fm.CreateAttrs = append(fm.CreateAttrs, a)
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
