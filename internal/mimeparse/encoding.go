package mimeparse

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Binary encoding of a Part tree (version 1):
//
//	magic "MPT" | version byte | node
//	node  = flags byte | uvarint startDelta | uvarint headerLen |
//	        uvarint bodyLen | uvarint bodyLines |
//	        uvarint rawHeaderLen | rawHeader bytes |
//	        uvarint nChildren | node... | [node (the encapsulated message)]
//
// startDelta is relative to the root's offset 0, to the parent's BodyStart
// for a first child or an encapsulated message, and to the previous
// sibling's End otherwise. Parsed headers and media types are rebuilt from
// the raw headers.

const (
	encMagic   = "MPT"
	encVersion = 1

	flagHeaderTruncated = 1 << 0
	flagSynthetic       = 1 << 1
	flagMessage         = 1 << 2
	flagsKnown          = flagHeaderTruncated | flagSynthetic | flagMessage

	// minNodeLen is the smallest encoded node: a flags byte and six
	// one-byte uvarints.
	minNodeLen = 7
	// maxOffset bounds decoded offsets so that sums cannot overflow.
	maxOffset = 1 << 53
)

// ErrCorrupt is wrapped by the errors of UnmarshalPart.
var ErrCorrupt = errors.New("mimeparse: corrupt part encoding")

// MarshalBinary encodes the whole tree rooted at p: offsets and raw headers.
func (p *Part) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+p.encodedHeaderBytes())
	b = append(b, encMagic...)
	b = append(b, encVersion)
	return p.appendNode(b, 0), nil
}

func (p *Part) encodedHeaderBytes() int {
	n := len(p.RawHeader)
	for _, c := range p.Children {
		n += c.encodedHeaderBytes() + 16
	}
	if p.Message != nil {
		n += p.Message.encodedHeaderBytes() + 16
	}
	return n
}

func (p *Part) appendNode(b []byte, base int64) []byte {
	var flags byte
	if p.HeaderTruncated {
		flags |= flagHeaderTruncated
	}
	if p.Synthetic {
		flags |= flagSynthetic
	}
	if p.Message != nil {
		flags |= flagMessage
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(p.Start-base))
	b = binary.AppendUvarint(b, uint64(p.BodyStart-p.Start))
	b = binary.AppendUvarint(b, uint64(p.End-p.BodyStart))
	b = binary.AppendUvarint(b, uint64(p.BodyLines))
	b = binary.AppendUvarint(b, uint64(len(p.RawHeader)))
	b = append(b, p.RawHeader...)
	b = binary.AppendUvarint(b, uint64(len(p.Children)))
	prev := p.BodyStart
	for _, c := range p.Children {
		b = c.appendNode(b, prev)
		prev = c.End
	}
	if p.Message != nil {
		b = p.Message.appendNode(b, p.BodyStart)
	}
	return b
}

// UnmarshalPart decodes a tree encoded by MarshalBinary. It checks every
// offset and invariant, so that a corrupt or hostile input yields an error
// wrapping ErrCorrupt, never a panic or an oversized allocation.
func UnmarshalPart(b []byte) (*Part, error) {
	if len(b) < len(encMagic)+1 || string(b[:len(encMagic)]) != encMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := b[len(encMagic)]; v != encVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, v)
	}
	d := &decoder{b: b[len(encMagic)+1:]}
	p, err := d.node(0, 0, false)
	if err != nil {
		return nil, err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return p, nil
}

type decoder struct {
	b      []byte
	nparts int
}

func (d *decoder) uvarint(what string) (int64, error) {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > maxOffset {
		return 0, fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = d.b[n:]
	return int64(v), nil
}

func (d *decoder) node(base int64, depth int, parentDigest bool) (*Part, error) {
	if depth > MaxDepth+1 {
		return nil, fmt.Errorf("%w: nesting too deep", ErrCorrupt)
	}
	if d.nparts++; d.nparts > 2*MaxParts {
		return nil, fmt.Errorf("%w: too many parts", ErrCorrupt)
	}
	if len(d.b) < minNodeLen {
		return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	flags := d.b[0]
	d.b = d.b[1:]
	if flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	var v [5]int64
	for i, what := range [...]string{"start", "header length", "body length", "line count", "raw header length"} {
		var err error
		if v[i], err = d.uvarint(what); err != nil {
			return nil, err
		}
	}
	p := &Part{
		Start:           base + v[0],
		HeaderTruncated: flags&flagHeaderTruncated != 0,
		Synthetic:       flags&flagSynthetic != 0,
		BodyLines:       v[3],
	}
	p.BodyStart = p.Start + v[1]
	p.End = p.BodyStart + v[2]
	if p.End > maxOffset {
		return nil, fmt.Errorf("%w: offset out of range", ErrCorrupt)
	}
	if p.BodyLines > v[2] {
		return nil, fmt.Errorf("%w: line count exceeds body size", ErrCorrupt)
	}
	rawLen := v[4]
	if rawLen > int64(len(d.b)) || rawLen > v[1] || (!p.HeaderTruncated && rawLen != v[1]) {
		return nil, fmt.Errorf("%w: bad raw header length", ErrCorrupt)
	}
	if rawLen > 0 {
		p.RawHeader = append([]byte(nil), d.b[:rawLen]...)
	}
	d.b = d.b[rawLen:]
	if p.Synthetic && (v[1] != 0 || p.HeaderTruncated) {
		return nil, fmt.Errorf("%w: synthetic part with a header", ErrCorrupt)
	}
	p.Header = parseHeader(p.RawHeader)
	p.classify(parentDigest)

	nchild, err := d.uvarint("child count")
	if err != nil {
		return nil, err
	}
	if nchild > int64(len(d.b)/minNodeLen) {
		return nil, fmt.Errorf("%w: bad child count", ErrCorrupt)
	}
	if nchild > 0 {
		digest := p.typ == "multipart" && p.sub == "digest"
		p.Children = make([]*Part, 0, nchild)
		prev := p.BodyStart
		for i := int64(0); i < nchild; i++ {
			c, err := d.node(prev, depth+1, digest)
			if err != nil {
				return nil, err
			}
			if c.End > p.End {
				return nil, fmt.Errorf("%w: part beyond its parent", ErrCorrupt)
			}
			p.Children = append(p.Children, c)
			prev = c.End
		}
	}
	if flags&flagMessage != 0 {
		m, err := d.node(p.BodyStart, depth+1, false)
		if err != nil {
			return nil, err
		}
		if m.Start != p.BodyStart || m.End != p.End {
			return nil, fmt.Errorf("%w: encapsulated message does not fill its part", ErrCorrupt)
		}
		p.Message = m
	}
	// The shapes Parse produces: multipart entities have children, message
	// entities an encapsulated message, and nothing else has either.
	if (p.typ == "multipart") != (len(p.Children) > 0) ||
		isMessageType(p.typ, p.sub) != (p.Message != nil) ||
		(p.Synthetic && (p.Message != nil || len(p.Children) > 0)) {
		return nil, fmt.Errorf("%w: structure does not match headers", ErrCorrupt)
	}
	return p, nil
}
