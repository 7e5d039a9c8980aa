package testmail

import (
	"fmt"
	"testing"
)

func TestZZDump(t *testing.T) {
	for i, m := range Corpus() {
		if i >= 20 {
			break
		}
		raw := m.Raw
		if len(raw) > 3000 {
			raw = raw[:3000]
		}
		fmt.Printf("==== %d %s folder=%q flags=%v kw=%v date=%s id=%q\n%s\n", i, m.Kind, m.Folder, m.Flags, m.Keywords, m.Date, m.MessageID, raw)
	}
}
