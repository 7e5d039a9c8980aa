#!/usr/bin/env python3
"""Interop checks of a running 'imapctl serve' with Python's imaplib.

Usage: imaplib_test.py HOST TLS_PORT PLAIN_PORT CAFILE USER PASSWORD

imaplib is a client imapctl's authors did not write, so it exercises the
server the way third-party software does. The script logs in over implicit
TLS and over STARTTLS (verifying the certificate against CAFILE, host name
included), then runs LIST, CREATE with a non-ASCII name, SELECT, APPEND
with flags and a date, FETCH, SEARCH, STORE, COPY, EXPUNGE and IDLE. It
checks every answer and exits 1 with what differed at the first mismatch,
0 when all checks pass.
"""

import base64
import datetime
import imaplib
import re
import socket
import ssl
import sys
import traceback


class Mismatch(Exception):
    pass


def expect(got, want, what):
    if got != want:
        raise Mismatch("%s:\n  got:  %r\n  want: %r" % (what, got, want))


def expect_true(cond, what, detail=None):
    if not cond:
        msg = what
        if detail is not None:
            msg += ":\n  %r" % (detail,)
        raise Mismatch(msg)


def ok(result, what):
    typ, data = result
    expect(typ, "OK", "%s: status (data %r)" % (what, data))
    return data


# --- Modified UTF-7 (RFC 3501 section 5.1.3) --------------------------------

def mutf7_encode(s):
    out, run = [], []

    def flush():
        if run:
            b64 = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii")
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    def repl(m):
        body = m.group(1)
        if body == "":
            return "&"
        b = body.replace(",", "/")
        b += "=" * (-len(b) % 4)
        return base64.b64decode(b).decode("utf-16-be")

    return re.sub(r"&([A-Za-z0-9+,]*)-", repl, s)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Response parsing -------------------------------------------------------

class Literal(bytes):
    """A string that came as an IMAP literal."""


def tokens_of(data):
    """Tokenises imaplib response data (bytes and (head, literal) tuples)
    into atoms, quoted strings, literals, '(' and ')'. An atom keeps a
    bracketed section with its spaces and parentheses, as in
    BODY[HEADER.FIELDS (SUBJECT)]."""
    toks = []
    for part in data:
        if isinstance(part, tuple):
            head, lit = part
            m = re.search(rb"\{(\d+)\}$", head)
            expect_true(m is not None, "literal without {n} in response", head)
            toks.extend(tokenise(head[: m.start()]))
            expect(len(lit), int(m.group(1)), "literal length")
            toks.append(Literal(lit))
        elif part is not None:
            toks.extend(tokenise(part))
    return toks


def tokenise(b):
    out, i, n = [], 0, len(b)
    while i < n:
        c = b[i : i + 1]
        if c in b" \r\n":
            i += 1
        elif c in b"()":
            out.append(c.decode())
            i += 1
        elif c == b'"':
            j, buf = i + 1, bytearray()
            while b[j : j + 1] != b'"':
                if b[j : j + 1] == b"\\":
                    j += 1
                buf += b[j : j + 1]
                j += 1
            out.append(bytes(buf))
            i = j + 1
        else:
            j, depth = i, 0
            while j < n:
                d = b[j : j + 1]
                if d == b"[":
                    depth += 1
                elif d == b"]":
                    depth -= 1
                elif depth == 0 and d in b" ()":
                    break
                j += 1
            out.append(b[i:j].decode())
            i = j
    return out


def parse_sexp(toks, i=0):
    """Parses one value at toks[i]: a list for '(...)', else the token."""
    if toks[i] == "(":
        items, i = [], i + 1
        while toks[i] != ")":
            v, i = parse_sexp(toks, i)
            items.append(v)
        return items, i + 1
    return toks[i], i + 1


def parse_fetch(data):
    """Returns {seq: {ITEM: value}} from a FETCH response."""
    toks = tokens_of(data)
    res, i = {}, 0
    while i < len(toks):
        seq = int(toks[i])
        expect(toks[i + 1], "(", "FETCH response shape")
        items, i = parse_sexp(toks, i + 1)
        d = res.setdefault(seq, {})
        for k in range(0, len(items), 2):
            d[items[k].upper()] = items[k + 1]
    return res


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v


def parse_list(data):
    """Returns [(attrs, delim, name)] from a LIST response."""
    toks = tokens_of(data)
    out, i = [], 0
    while i < len(toks):
        attrs, i = parse_sexp(toks, i)
        delim, i = parse_sexp(toks, i)
        name, i = parse_sexp(toks, i)
        out.append(([a.lower() for a in attrs], text(delim), text(name)))
    return out


def code_of(data, code):
    """Returns the arguments of response code [CODE ...] in data, or None."""
    for d in data:
        if isinstance(d, bytes):
            m = re.search(rb"\[" + code.encode() + rb" ([^\]]*)\]", d)
            if m:
                return m.group(1).decode().split()
    return None


def search(M, *criteria, charset=None, uid=False):
    if uid:
        data = ok(M.uid("SEARCH", *criteria), "UID SEARCH %s" % (criteria,))
    else:
        data = ok(M.search(charset, *criteria), "SEARCH %s" % (criteria,))
    return [int(x) for x in b" ".join(d for d in data if d).split()]


# --- The messages -----------------------------------------------------------

def crlf(s):
    return s.replace("\n", "\r\n").encode("utf-8")


MSG1 = crlf(
    """From: Alice <alice@example.org>
To: Bob <bob@example.org>
Subject: imaplib interop one
Date: Tue, 04 Mar 2025 10:00:00 +0100
Message-ID: <one@imaplib.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello Bob, the word needle-alpha is in this body.
Grüße.
"""
)

ATTACHMENT = base64.encodebytes(bytes(range(256)) * 4).decode("ascii")

MSG2 = crlf(
    """From: Carol <carol@example.org>
To: Alice <alice@example.org>
Subject: imaplib interop two
Date: Wed, 05 Mar 2025 11:30:00 +0000
Message-ID: <two@imaplib.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b0und4ry"

--b0und4ry
Content-Type: text/plain; charset=us-ascii

Please find needle-beta attached.
--b0und4ry
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

"""
    + ATTACHMENT
    + """--b0und4ry--
"""
)

MSG3 = crlf(
    """From: Dave <dave@example.org>
To: Alice <alice@example.org>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Python?=
Date: Thu, 06 Mar 2025 12:00:00 +0000
Message-ID: <three@imaplib.test>

Seen already.
"""
)


def body_of(msg):
    return msg.split(b"\r\n\r\n", 1)[1]


# --- The checks -------------------------------------------------------------

def check_list(M):
    boxes = parse_list(ok(M.list(), "LIST"))
    names = {name: attrs for attrs, _, name in boxes}
    expect_true("INBOX" in names, "LIST has no INBOX", boxes)
    for box, attr in [("Sent", "\\sent"), ("Trash", "\\trash"), ("Drafts", "\\drafts")]:
        expect_true(box in names, "LIST has no %s" % box, boxes)
        expect_true(attr in names[box], "%s lacks %s" % (box, attr), names[box])
    delims = {d for _, d, _ in boxes}
    expect(delims, {"/"}, "hierarchy delimiter")


def check_mailboxes(M, parent, child):
    ok(M.create(quote(mutf7_encode(parent))), "CREATE parent")
    ok(M.create(quote(mutf7_encode(child))), "CREATE child")
    typ, data = M.create(quote(mutf7_encode(child)))
    expect(typ, "NO", "CREATE of an existing mailbox")
    expect_true(b"ALREADYEXISTS" in data[0], "CREATE existing: response code", data)

    boxes = parse_list(ok(M.list('""', quote(mutf7_encode(parent) + "/*")), "LIST parent/*"))
    expect([mutf7_decode(n) for _, _, n in boxes], [child], "LIST parent/* names")
    expect([n for _, _, n in boxes], [mutf7_encode(child)], "LIST parent/* in modified UTF-7")
    boxes = parse_list(ok(M.list('""', quote(mutf7_encode(parent))), "LIST parent"))
    expect(len(boxes), 1, "LIST parent: one mailbox")
    expect_true("\\haschildren" in boxes[0][0], "parent lacks \\HasChildren", boxes)

    data = ok(M.status(quote(mutf7_encode(child)), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS")
    m = re.search(rb"MESSAGES (\d+)", data[0])
    expect_true(m is not None, "STATUS without MESSAGES", data)
    expect(int(m.group(1)), 0, "STATUS MESSAGES of a new mailbox")


def check_append(M, box):
    when = datetime.datetime(2025, 3, 4, 10, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    uids = []
    for msg, flags, date in [
        (MSG1, r"(\Flagged $Important)", when),
        (MSG2, None, when + datetime.timedelta(days=1)),
        (MSG3, r"(\Seen)", when + datetime.timedelta(days=2)),
    ]:
        data = ok(M.append(box, flags, imaplib.Time2Internaldate(date), msg), "APPEND")
        appenduid = code_of(data, "APPENDUID")
        expect_true(appenduid is not None, "APPEND answered without APPENDUID", data)
        uids.append(int(appenduid[1]))
    expect(uids, sorted(uids), "APPENDUIDs ascend")
    expect(len(set(uids)), 3, "APPENDUIDs distinct")

    # An APPEND to a missing mailbox fails with TRYCREATE.
    typ, data = M.append(quote("No such box"), None, None, MSG3)
    expect(typ, "NO", "APPEND to a missing mailbox")
    expect_true(b"TRYCREATE" in data[0], "APPEND to a missing mailbox: TRYCREATE", data)
    return uids, when


def check_fetch(M, uids, when):
    f = parse_fetch(ok(M.fetch("1:3", "(UID FLAGS INTERNALDATE RFC822.SIZE)"), "FETCH metadata"))
    expect(sorted(f), [1, 2, 3], "FETCH 1:3 sequence numbers")
    expect([int(f[i]["UID"]) for i in (1, 2, 3)], uids, "UIDs match APPENDUIDs")
    expect(sorted(f[1]["FLAGS"]), ["$Important", "\\Flagged"], "flags of message 1")
    expect(f[2]["FLAGS"], [], "flags of message 2")
    expect(f[3]["FLAGS"], ["\\Seen"], "flags of message 3")
    for i, msg in [(1, MSG1), (2, MSG2), (3, MSG3)]:
        expect(int(f[i]["RFC822.SIZE"]), len(msg), "RFC822.SIZE of message %d" % i)
    got = datetime.datetime.strptime(text(f[1]["INTERNALDATE"]).strip(), "%d-%b-%Y %H:%M:%S %z")
    expect(got, when, "INTERNALDATE of message 1 (as given to APPEND)")

    f = parse_fetch(ok(M.fetch("1", "(FLAGS BODY.PEEK[] BODYSTRUCTURE)"), "FETCH 1 BODY.PEEK[]"))[1]
    expect(bytes(f["BODY[]"]), MSG1, "BODY[] of message 1")
    expect_true("\\Seen" not in f["FLAGS"], "BODY.PEEK[] set \\Seen", f["FLAGS"])
    bs = f["BODYSTRUCTURE"]
    expect([text(x).upper() for x in bs[:2]], ["TEXT", "PLAIN"], "BODYSTRUCTURE type of message 1")
    params = [text(x).lower() for x in bs[2]]
    expect(params, ["charset", "utf-8"], "BODYSTRUCTURE parameters of message 1")
    expect(text(bs[5]).upper(), "8BIT", "BODYSTRUCTURE encoding of message 1")
    body = body_of(MSG1)
    expect(int(bs[6]), len(body), "BODYSTRUCTURE size of message 1")
    expect(int(bs[7]), body.count(b"\r\n"), "BODYSTRUCTURE lines of message 1")

    f = parse_fetch(ok(M.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])"), "FETCH header fields"))[1]
    hdr = [v for k, v in f.items() if k.startswith("BODY[HEADER.FIELDS")]
    expect([bytes(v) for v in hdr], [b"Subject: imaplib interop one\r\n\r\n"], "BODY[HEADER.FIELDS (SUBJECT)]")
    # Without PEEK, the message is now \Seen (RFC 3501 section 6.4.5).
    f = parse_fetch(ok(M.fetch("1", "(FLAGS)"), "FETCH FLAGS"))[1]
    expect_true("\\Seen" in f["FLAGS"], "BODY[...] did not set \\Seen", f["FLAGS"])

    f = parse_fetch(ok(M.fetch("2", "(BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2.MIME])"), "FETCH 2 parts"))[2]
    bs = f["BODYSTRUCTURE"]
    expect(text(bs[2]).upper(), "MIXED", "BODYSTRUCTURE subtype of message 2")
    expect([text(x).upper() for x in bs[0][:2]], ["TEXT", "PLAIN"], "part 1 type")
    expect([text(x).upper() for x in bs[1][:2]], ["APPLICATION", "OCTET-STREAM"], "part 2 type")
    expect(text(bs[1][5]).upper(), "BASE64", "part 2 encoding")
    boundary = [text(x) for x in bs[3]]
    expect_true("b0und4ry" in boundary, "multipart boundary parameter", bs[3])
    expect(bytes(f["BODY[1]"]), b"Please find needle-beta attached.", "BODY[1] of message 2")
    expect_true(b"filename=\"data.bin\"" in bytes(f["BODY[2.MIME]"]), "BODY[2.MIME] of message 2", f["BODY[2.MIME]"])

    # UID FETCH by the UID from APPENDUID.
    f = parse_fetch(ok(M.uid("FETCH", str(uids[2]), "(BODY.PEEK[TEXT])"), "UID FETCH"))
    expect(list(f), [3], "UID FETCH sequence number")
    expect(bytes(f[3]["BODY[TEXT]"]), body_of(MSG3), "BODY[TEXT] of message 3")


def check_search(M, uids):
    expect(search(M, "ALL"), [1, 2, 3], "SEARCH ALL")
    expect(search(M, "SUBJECT", quote("interop two")), [2], "SEARCH SUBJECT")
    expect(search(M, "SUBJECT", quote("IMAPLIB INTEROP")), [1, 2], "SEARCH SUBJECT is case-insensitive")
    expect(search(M, "UNSEEN"), [2], "SEARCH UNSEEN")
    expect(search(M, "FLAGGED"), [1], "SEARCH FLAGGED")
    expect(search(M, "KEYWORD", "$Important"), [1], "SEARCH KEYWORD")
    expect(search(M, "BODY", "needle-beta"), [2], "SEARCH BODY")
    expect(search(M, "BODY", "needle-alpha"), [1], "SEARCH BODY (8bit)")
    expect(search(M, "TEXT", "needle"), [1, 2], "SEARCH TEXT")
    expect(search(M, "FROM", "carol"), [2], "SEARCH FROM")
    expect(search(M, "HEADER", "Message-ID", "three@imaplib.test"), [3], "SEARCH HEADER")
    expect(search(M, "OR", "FLAGGED", "SEEN", "NOT", "SUBJECT", "nothing"), [1, 3], "SEARCH OR/NOT")
    expect(search(M, "UID", "%d:%d" % (uids[1], uids[2]), uid=True), uids[1:], "UID SEARCH UID")
    expect(search(M, "SENTBEFORE", "05-Mar-2025"), [1], "SEARCH SENTBEFORE")
    expect(search(M, "LARGER", str(len(MSG1) + 1)), [2], "SEARCH LARGER")
    # A non-ASCII search string in a literal matches the decoded RFC 2047
    # subject.
    M.literal = "Grüße".encode("utf-8")
    expect(search(M, "SUBJECT", charset="UTF-8"), [3], "SEARCH CHARSET UTF-8 SUBJECT literal")
    expect(search(M, "SUBJECT", quote("nothing at all")), [], "SEARCH with no match")


def check_store_copy_expunge(M, box):
    f = parse_fetch(ok(M.store("2", "+FLAGS", r"(\Answered $Label1)"), "STORE +FLAGS"))
    expect(sorted(f[2]["FLAGS"]), ["$Label1", "\\Answered"], "flags after STORE +FLAGS")
    f = parse_fetch(ok(M.store("2", "-FLAGS", r"($Label1)"), "STORE -FLAGS"))
    expect(f[2]["FLAGS"], ["\\Answered"], "flags after STORE -FLAGS")
    f = parse_fetch(ok(M.store("1", "FLAGS", r"(\Seen)"), "STORE FLAGS"))
    expect(f[1]["FLAGS"], ["\\Seen"], "flags after STORE FLAGS")
    data = ok(M.store("3", "+FLAGS.SILENT", r"(\Deleted)"), "STORE +FLAGS.SILENT")
    expect([d for d in data if d], [], "STORE .SILENT sends no FETCH")

    before = ok(M.status("Archive", "(MESSAGES)"), "STATUS Archive")
    n0 = int(re.search(rb"MESSAGES (\d+)", before[0]).group(1))
    data = ok(M.copy("1:2", "Archive"), "COPY")
    copyuid = code_of(data, "COPYUID")
    expect_true(copyuid is not None, "COPY answered without COPYUID", data)
    after = ok(M.status("Archive", "(MESSAGES)"), "STATUS Archive")
    expect(int(re.search(rb"MESSAGES (\d+)", after[0]).group(1)), n0 + 2, "Archive grew by 2")
    typ, data = M.copy("1", quote("No such box"))
    expect(typ, "NO", "COPY to a missing mailbox")
    expect_true(b"TRYCREATE" in data[0], "COPY to a missing mailbox: TRYCREATE", data)

    # The copies keep their flags and bytes.
    ok(M.select("Archive", readonly=True), "EXAMINE Archive")
    f = parse_fetch(ok(M.fetch("%d:%d" % (n0 + 1, n0 + 2), "(FLAGS BODY.PEEK[])"), "FETCH copies"))
    expect(bytes(f[n0 + 1]["BODY[]"]), MSG1, "copy of message 1")
    expect(bytes(f[n0 + 2]["BODY[]"]), MSG2, "copy of message 2")
    expect(f[n0 + 2]["FLAGS"], ["\\Answered"], "flags of the copy of message 2")
    # EXAMINE is read-only.
    typ, _ = M.store("1", "+FLAGS", r"(\Deleted)")
    expect(typ, "NO", "STORE in an EXAMINEd mailbox")

    data = ok(M.select(box), "SELECT again")
    expect(data, [b"3"], "SELECT message count")
    data = ok(M.expunge(), "EXPUNGE")
    expect(data, [b"3"], "EXPUNGE responses")
    data = ok(M.select(box), "SELECT after EXPUNGE")
    expect(data, [b"2"], "message count after EXPUNGE")
    expect(search(M, "DELETED"), [], "SEARCH DELETED after EXPUNGE")


def check_idle(M, other, box):
    """IDLE on M while `other` appends to the same mailbox."""
    ok(M.select(box), "SELECT for IDLE")
    tag = M._new_tag()
    M.send(tag + b" IDLE\r\n")
    line = M.readline()
    expect_true(line.startswith(b"+"), "IDLE continuation", line)
    ok(other.append(box, None, None, MSG3), "APPEND from another connection")
    M.sock.settimeout(30)
    seen = []
    while True:
        line = M.readline()
        expect_true(line != b"", "connection closed during IDLE", seen)
        seen.append(line)
        if re.match(rb"\* 3 EXISTS\r\n", line):
            break
    M.send(b"DONE\r\n")
    while True:
        line = M.readline()
        expect_true(line != b"", "connection closed after DONE", seen)
        if line.startswith(tag + b" "):
            expect_true(line.startswith(tag + b" OK"), "IDLE completion", line)
            break
    M.sock.settimeout(None)


def check_starttls(host, port, ctx, user, password, parent, child):
    M = imaplib.IMAP4(host, port)
    expect_true("STARTTLS" in M.capabilities, "no STARTTLS capability", M.capabilities)
    ok(M.starttls(ssl_context=ctx), "STARTTLS")
    expect_true(isinstance(M.sock, ssl.SSLSocket), "STARTTLS did not switch to TLS")
    expect_true(M.sock.version() in ("TLSv1.2", "TLSv1.3"), "TLS version", M.sock.version())
    ok(M.login(user, password), "LOGIN after STARTTLS")
    # Capabilities may grow after login; imaplib does not re-read them.
    caps = ok(M.capability(), "CAPABILITY")[-1].decode().upper().split()
    M.capabilities = tuple(caps)
    expect(ok(M.select(quote(mutf7_encode(child))), "SELECT"), [b"3"], "message count via STARTTLS")
    f = parse_fetch(ok(M.fetch("1", "(BODY.PEEK[])"), "FETCH via STARTTLS"))
    expect(bytes(f[1]["BODY[]"]), MSG1, "BODY[] via STARTTLS")
    ok(M.unselect(), "UNSELECT")

    # With UTF8=ACCEPT (RFC 6855), names travel as UTF-8 both ways.
    expect_true("UTF8=ACCEPT" in M.capabilities, "no UTF8=ACCEPT capability", M.capabilities)
    ok(M.enable("UTF8=ACCEPT"), "ENABLE UTF8=ACCEPT")
    name = parent + "/Café ☕"
    ok(M.create(quote(name)), "CREATE with a UTF-8 name")
    boxes = parse_list(ok(M.list('""', quote(parent + "/Caf*")), "LIST with UTF-8 names"))
    expect([n for _, _, n in boxes], [name], "LIST name under UTF8=ACCEPT")
    # COPY rather than APPEND: imaplib wraps a UTF8=ACCEPT APPEND's "UTF8 ("
    # marker inside the literal (CPython gh-78319), so the server would
    # rightly store those bytes as part of the message.
    ok(M.select("Archive"), "SELECT Archive")
    seqs = search(M, "HEADER", "Message-ID", "one@imaplib.test")
    expect_true(len(seqs) >= 1, "message one in Archive", seqs)
    data = ok(M.copy(str(seqs[0]), quote(name)), "COPY to a UTF-8 name")
    expect_true(code_of(data, "COPYUID") is not None, "COPY answered without COPYUID", data)
    expect(ok(M.select(quote(name)), "SELECT by UTF-8 name"), [b"1"], "message count of the UTF-8 mailbox")
    f = parse_fetch(ok(M.fetch("1", "(BODY.PEEK[])"), "FETCH in the UTF-8 mailbox"))
    expect(bytes(f[1]["BODY[]"]), MSG1, "BODY[] in the UTF-8 mailbox")
    M.logout()


def check_bad_login(host, port, ctx, user):
    M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    try:
        M.login(user, "not-the-password")
    except imaplib.IMAP4.error as e:
        expect_true("AUTHENTICATIONFAILED" in str(e) or "fail" in str(e).lower(), "wrong password: message", str(e))
    else:
        raise Mismatch("LOGIN with a wrong password succeeded")
    finally:
        try:
            M.logout()
        except Exception:
            pass


def check_untrusted(host, port):
    """With only the system's trust anchors, the self-signed certificate
    must be refused: verification is really on."""
    ctx = ssl.create_default_context()
    try:
        imaplib.IMAP4_SSL(host, port, ssl_context=ctx).logout()
    except ssl.SSLCertVerificationError:
        return
    raise Mismatch("TLS succeeded without trusting the server's certificate")


def begin(step):
    print("checking:", step, flush=True)
    return step


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    host, tls_port, plain_port, cafile, user, password = argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5], argv[6]
    socket.setdefaulttimeout(60)
    ctx = ssl.create_default_context(cafile=cafile)
    expect(ctx.check_hostname, True, "check_hostname")
    expect(ctx.verify_mode, ssl.CERT_REQUIRED, "verify_mode")

    parent, child = "Ablage", "Ablage/Größe 日本 & Co"
    step = "connect"
    try:
        M = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx)
        step = begin("login")
        expect_true("IMAP4REV1" in M.capabilities, "IMAP4rev1 capability", M.capabilities)
        ok(M.login(user, password), "LOGIN over TLS")
        step = begin("list")
        check_list(M)
        step = begin("create")
        check_mailboxes(M, parent, child)
        box = quote(mutf7_encode(child))
        step = begin("select")
        data = ok(M.select(box), "SELECT")
        expect(data, [b"0"], "SELECT count of a new mailbox")
        step = begin("append")
        uids, when = check_append(M, box)
        ok(M.select(box), "SELECT after APPEND")
        step = begin("fetch")
        check_fetch(M, uids, when)
        step = begin("search")
        check_search(M, uids)
        step = begin("store/copy/expunge")
        check_store_copy_expunge(M, box)
        step = begin("idle")
        other = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx)
        ok(other.login(user, password), "second LOGIN")
        check_idle(M, other, box)
        other.logout()
        M.logout()
        step = begin("starttls")
        check_starttls(host, plain_port, ctx, user, password, parent, child)
        step = begin("wrong password")
        check_bad_login(host, tls_port, ctx, user)
        step = begin("untrusted certificate")
        check_untrusted(host, tls_port)
    except Mismatch as e:
        print("FAIL (%s): %s" % (step, e), file=sys.stderr)
        return 1
    except Exception:
        print("FAIL (%s): unexpected error" % step, file=sys.stderr)
        traceback.print_exc()
        return 1
    print("imaplib interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
