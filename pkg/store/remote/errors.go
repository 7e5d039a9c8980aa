package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/pkg/store"
)

// Error classes. Errors returned by this package wrap them so that the
// CLI can map them to exit codes with errors.Is (4 for ErrAuth, 75 for
// ErrUnavailable, 2 for ErrConfig).
var (
	// ErrAuth means the server refused the credentials (NO
	// [AUTHENTICATIONFAILED] and friends) or offers no usable
	// authentication. It is never retried: a failed SASL exchange wedges
	// the connection and repeated attempts risk locking the account.
	ErrAuth = errors.New("authentication failed")
	// ErrUnavailable means the server could not be reached or kept failing
	// (connection refused or reset, BYE, NO [UNAVAILABLE], no response
	// within the timeout) after the configured retries. Trying again later
	// may succeed.
	ErrUnavailable = errors.New("server unavailable")
	// ErrTLS means the TLS connection could not be set up: an untrusted,
	// expired or mismatched certificate, a server without STARTTLS, or a
	// port that does not speak TLS. The error's text carries the detail.
	ErrTLS = errors.New("TLS failure")
	// ErrConfig means the configuration cannot work (a bad URL, a password
	// in the URL, plaintext to a non-loopback host).
	ErrConfig = errors.New("invalid configuration")
	// ErrInvalidFlag means a flag or keyword cannot be expressed in IMAP
	// (it contains a space, a parenthesis, a non-ASCII character...).
	ErrInvalidFlag = errors.New("flag cannot be sent over IMAP")
	// ErrClosed is returned by operations on a closed Store or Mailbox.
	ErrClosed = errors.New("closed")
)

// AuthError reports a refused login. It matches ErrAuth.
type AuthError struct {
	User      string
	Host      string
	Mechanism string // "LOGIN", "AUTHENTICATE PLAIN", ...
	Err       error  // usually an *imap.Error with the server's reason
	Hint      string // what to do, when known
}

func (e *AuthError) Error() string {
	msg := fmt.Sprintf("login as %q on %s (%s) failed: %v", e.User, e.Host, e.Mechanism, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrAuth) true.
func (e *AuthError) Is(target error) bool { return target == ErrAuth }

// Unwrap returns the server's response.
func (e *AuthError) Unwrap() error { return e.Err }

// TLSError reports a TLS failure with its detail (the x509 error for a
// certificate problem) and a hint. It matches ErrTLS.
type TLSError struct {
	Host string
	Err  error
	Hint string
}

func (e *TLSError) Error() string {
	msg := fmt.Sprintf("TLS with %s: %v", e.Host, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrTLS) true.
func (e *TLSError) Is(target error) bool { return target == ErrTLS }

// Unwrap returns the underlying error (often an x509 error).
func (e *TLSError) Unwrap() error { return e.Err }

// unavailableError wraps the last transient error once retries are
// exhausted. It matches ErrUnavailable.
type unavailableError struct {
	attempts int
	err      error
}

func (e *unavailableError) Error() string {
	if e.attempts > 1 {
		return fmt.Sprintf("server unavailable after %d attempts: %v", e.attempts, e.err)
	}
	return fmt.Sprintf("server unavailable: %v", e.err)
}

func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e *unavailableError) Unwrap() error        { return e.err }

// Temporary reports true: the server may be back later (pkg/sync stops the
// folder and a re-run resumes).
func (e *unavailableError) Temporary() bool { return true }

// timeoutError is the watchdog's verdict: the server did not answer within
// Config.Timeout. The connection is closed and the error is transient.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no response from the server within %v", e.d)
}
func (e *timeoutError) Timeout() bool { return true }

// AppendUncertainError reports an APPEND whose outcome is unknown: the
// whole message was sent, then the connection failed before the server's
// tagged reply arrived, so the server may or may not have stored it. The
// APPEND is not retried, which could store the message twice: look for the
// message by identity (Message-ID, size, date) before appending it again.
type AppendUncertainError struct {
	Mailbox string
	Size    int64
	// Messages is the number of messages of a MULTIAPPEND; 0 for one.
	Messages int
	Err      error
}

func (e *AppendUncertainError) Error() string {
	if e.Messages > 0 {
		return fmt.Sprintf("APPEND of %d messages (%d bytes) to %q: outcome unknown, the connection failed after they were sent: %v",
			e.Messages, e.Size, e.Mailbox, e.Err)
	}
	return fmt.Sprintf("APPEND of %d bytes to %q: outcome unknown, the connection failed after the message was sent: %v",
		e.Size, e.Mailbox, e.Err)
}

// Unwrap returns the connection error.
func (e *AppendUncertainError) Unwrap() error { return e.Err }

// Uncertain reports true: the caller must look for the message before
// appending it again (the interface pkg/sync checks).
func (e *AppendUncertainError) Uncertain() bool { return true }

// UncertainError reports a COPY or MOVE whose outcome is unknown: the
// command was sent, then the connection failed before its reply. It is not
// retried (a second COPY would duplicate messages); list the target
// mailbox to learn what happened.
type UncertainError struct {
	Op      string // "COPY", "MOVE"
	Mailbox string // the source mailbox
	Dest    string // the target mailbox
	Err     error
}

func (e *UncertainError) Error() string {
	return fmt.Sprintf("%s from %q to %q: outcome unknown, the connection failed after the command was sent: %v",
		e.Op, e.Mailbox, e.Dest, e.Err)
}

// Unwrap returns the connection error.
func (e *UncertainError) Unwrap() error { return e.Err }

// Uncertain reports true: list the target to learn what happened.
func (e *UncertainError) Uncertain() bool { return true }

// Retryable reports whether err is transient: the same operation may
// succeed if tried again later (a dropped or refused connection, BYE, NO
// [UNAVAILABLE], a timeout). Authentication, TLS and configuration
// failures, the caller's own cancellation, server refusals (NO/BAD),
// UIDVALIDITY changes and uncertain APPEND/COPY/MOVE outcomes are not:
// those need a decision first.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		ae *AppendUncertainError
		ue *UncertainError
		ve *store.UIDValidityError
	)
	switch {
	case errors.Is(err, ErrAuth), errors.Is(err, ErrTLS), errors.Is(err, ErrConfig), errors.Is(err, ErrClosed),
		errors.As(err, &ae), errors.As(err, &ue), errors.As(err, &ve):
		return false
	case errors.Is(err, ErrUnavailable):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return transient(err)
}

// transient reports whether err is a connection-level failure: anything
// that is not a server's NO/BAD, apart from NO [UNAVAILABLE] (and the
// related INUSE and LIMIT codes), or a local problem that needs no server.
func transient(err error) bool {
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch ie.Code {
		case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse:
			return true
		}
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var te *timeoutError
	if errors.As(err, &te) {
		return true
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		// "no such host" will not change by retrying.
		return de.IsTemporary || de.IsTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.ErrClosedPipe), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.Is(err, errConnLost):
		return true
	}
	return false
}

// errConnLost marks failures of the connection that carry no more
// specific error (go-imap's decoder errors, a closed client).
var errConnLost = errors.New("connection lost")

// connLost wraps a protocol-level error that ended the connection.
type connLostError struct{ err error }

func (e *connLostError) Error() string        { return "connection lost: " + e.err.Error() }
func (e *connLostError) Unwrap() error        { return e.err }
func (e *connLostError) Is(target error) bool { return target == errConnLost }

// imapCode returns the response code of an *imap.Error in err, or "".
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// isNo reports whether err is a NO or BAD from the server.
func isNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

// tlsError classifies a handshake failure. It returns nil when err is a
// plain network failure (reset, EOF), which is transient.
func tlsError(host string, err error) error {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
		cie x509.CertificateInvalidError
		rhe tls.RecordHeaderError
		ale tls.AlertError
	)
	switch {
	case errors.As(err, &uae):
		return &TLSError{Host: host, Err: err, Hint: "the certificate is not signed by a trusted authority: " +
			"pass the server's CA certificate with --ca, or fix the server's certificate chain"}
	case errors.As(err, &hne):
		return &TLSError{Host: host, Err: err, Hint: "the certificate was issued for other names: " +
			"connect with a name the certificate lists"}
	case errors.As(err, &cie):
		hint := "the certificate is not valid"
		if cie.Reason == x509.Expired {
			hint = "the certificate has expired or is not yet valid: check the server's certificate and this machine's clock"
		}
		return &TLSError{Host: host, Err: err, Hint: hint}
	case errors.As(err, &cve):
		return &TLSError{Host: host, Err: err, Hint: "the server's certificate could not be verified"}
	case errors.As(err, &rhe):
		return &TLSError{Host: host, Err: err, Hint: "the server did not answer with TLS: " +
			"if this port speaks plain IMAP, use imap:// (STARTTLS) instead of imaps://"}
	case errors.As(err, &ale):
		return &TLSError{Host: host, Err: err, Hint: "the server rejected the TLS handshake"}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	// Anything else failed inside the TLS layer (an unsupported version or
	// cipher suite, a malformed record).
	return &TLSError{Host: host, Err: err}
}
