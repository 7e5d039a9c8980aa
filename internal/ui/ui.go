// Package ui renders what commands show a person: lipgloss tables, styled
// status words, and JSON for machines. Colour is used only on a terminal
// and never when NO_COLOR is set (https://no-color.org).
package ui

import (
	"encoding/json"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/mattn/go-isatty"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Color reports whether output to w may use colour.
func Color(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(w)
}

// Table renders rows under headers. On a colour terminal the header is
// bold and the borders dim; otherwise it is plain text with ASCII-safe
// rounded borders.
func Table(w io.Writer, headers []string, rows [][]string) string {
	color := Color(w)
	t := table.New().Headers(headers...).Rows(rows...)
	if color {
		border := lipgloss.NewStyle().Foreground(lipgloss.Color("8"))
		head := lipgloss.NewStyle().Bold(true).Padding(0, 1)
		cell := lipgloss.NewStyle().Padding(0, 1)
		t = t.Border(lipgloss.RoundedBorder()).BorderStyle(border).StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return head
			}
			return cell
		})
	} else {
		cell := lipgloss.NewStyle().Padding(0, 1)
		t = t.Border(lipgloss.NormalBorder()).StyleFunc(func(row, col int) lipgloss.Style { return cell })
	}
	return t.String() + "\n"
}

// Status colours a status word (OK, WARN, ERROR, ...) when colour is on.
func Status(w io.Writer, word string) string {
	if !Color(w) {
		return word
	}
	var c lipgloss.Color
	switch strings.ToUpper(word) {
	case "OK", "PASS", "VERIFIED":
		c = lipgloss.Color("2")
	case "WARN", "WARNING", "SKIPPED", "NOT TESTED":
		c = lipgloss.Color("3")
	case "ERROR", "FAIL", "FAILED":
		c = lipgloss.Color("1")
	default:
		return word
	}
	return lipgloss.NewStyle().Foreground(c).Bold(true).Render(word)
}

// JSON writes v as indented JSON followed by a newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
