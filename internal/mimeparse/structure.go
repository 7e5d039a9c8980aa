package mimeparse

import (
	"math"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
)

// BodyStructure returns the IMAP BODYSTRUCTURE (extended=true) or BODY
// (extended=false) of p (RFC 3501 §7.4.2, RFC 9051 §7.5.2).
//
// Fields are computed as go-imap's imapserver.ExtractBodyStructure does
// (lower-cased type and subtype, parameters as parsed by go-message, size in
// octets of the body, lines for text/* and message/rfc822) except that:
// a part of a multipart/digest without Content-Type is message/rfc822
// (RFC 2046 §5.1.5); a multipart always has at least one child (go-imap's
// encoder panics otherwise); a malformed Content-Type or
// Content-Disposition is parsed leniently instead of being returned raw; and
// for extended=false no extension data is set.
func (p *Part) BodyStructure(extended bool) imap.BodyStructure {
	h := gomessage.Header{Header: p.Header}
	if len(p.Children) > 0 {
		bs := &imap.BodyStructureMultiPart{Subtype: p.sub}
		if p.typ != "multipart" {
			bs.Subtype = "mixed"
		}
		bs.Children = make([]imap.BodyStructure, len(p.Children))
		for i, c := range p.Children {
			bs.Children[i] = c.BodyStructure(extended)
		}
		if extended {
			bs.Extended = &imap.BodyStructureMultiPartExt{
				Params:      cloneParams(p.params),
				Disposition: disposition(&h),
				Language:    language(&h),
				Location:    h.Get("Content-Location"),
			}
		}
		return bs
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        p.typ,
		Subtype:     p.sub,
		Params:      cloneParams(p.params),
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    h.Get("Content-Transfer-Encoding"),
		Size:        clampUint32(p.End - p.BodyStart),
	}
	if p.Message != nil {
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      p.Message.Envelope(),
			BodyStructure: p.Message.BodyStructure(extended),
			NumLines:      p.BodyLines,
		}
	}
	if p.typ == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: p.BodyLines}
	}
	if extended {
		bs.Extended = &imap.BodyStructureSinglePartExt{
			Disposition: disposition(&h),
			Language:    language(&h),
			Location:    h.Get("Content-Location"),
		}
	}
	return bs
}

// Envelope returns the IMAP ENVELOPE (RFC 3501 §7.4.2) computed from the
// header of p, exactly as go-imap's imapserver.ExtractEnvelope does.
func (p *Part) Envelope() *imap.Envelope {
	return imapserver.ExtractEnvelope(p.Header)
}

func disposition(h *gomessage.Header) *imap.BodyStructureDisposition {
	disp, params := contentDisposition(h)
	if disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: disp, Params: params}
}

// language splits Content-Language (RFC 3282) at commas.
func language(h *gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	l := strings.Split(v, ",")
	for i := range l {
		l[i] = strings.TrimSpace(l[i])
	}
	return l
}

func clampUint32(n int64) uint32 {
	switch {
	case n < 0:
		return 0
	case n > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(n)
}
