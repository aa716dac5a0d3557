package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalidJAAS is a JAAS configuration gregor cannot read.
var ErrInvalidJAAS = errors.New("auth: invalid JAAS configuration")

// PlainUsers reads the users of a PLAIN JAAS configuration, as Kafka's
// PlainLoginModule takes them: every option user_<name>="<password>".
//
//	org.apache.kafka.common.security.plain.PlainLoginModule required
//	    username="admin" password="admin-secret"
//	    user_admin="admin-secret" user_alice="alice-secret";
func PlainUsers(jaas string) (map[string]string, error) {
	m := jaasLine.FindStringSubmatch(jaas)
	if m == nil {
		return nil, fmt.Errorf("%w: want <LoginModule> required|optional|requisite|sufficient <option>=\"<value>\" ...;", ErrInvalidJAAS)
	}
	users := map[string]string{}
	rest := m[2]
	for _, o := range jaasOption.FindAllStringSubmatch(rest, -1) {
		if name, ok := cutPrefix(o[1], "user_"); ok {
			users[name] = unescapeJAAS(o[2])
		}
	}
	if leftover := jaasOption.ReplaceAllString(rest, ""); len(bytes.TrimSpace([]byte(leftover))) != 0 {
		return nil, fmt.Errorf("%w: cannot read %q", ErrInvalidJAAS, leftover)
	}
	return users, nil
}

var (
	jaasLine   = regexp.MustCompile(`^\s*([\w.$]+)\s+(?:required|optional|requisite|sufficient)\b((?s:.*?))\s*;\s*$`)
	jaasOption = regexp.MustCompile(`([\w.\-]+)\s*=\s*"((?:[^"\\]|\\.)*)"`)
)

// unescapeJAAS undoes a quoted JAAS value's backslash escapes, as Kafka's
// JaasConfig reads them (a backslash takes the next character as is).
func unescapeJAAS(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// plain is the server side of SASL PLAIN (RFC 4616): one message,
// [authzid] NUL user NUL password.
type plain struct {
	users map[string]string
}

// NewPlain starts a PLAIN exchange against users (user name to password).
func NewPlain(users map[string]string) Exchange { return &plain{users: users} }

func (p *plain) Next(token []byte) ([]byte, string, error) {
	parts := bytes.Split(token, []byte{0})
	if len(parts) != 3 {
		return nil, "", fmt.Errorf("Invalid SASL/PLAIN response: expected 3 tokens, got %d", len(parts))
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), parts[2]
	switch {
	case user == "":
		return nil, "", errors.New("Authentication failed: username not specified")
	case len(pass) == 0:
		return nil, "", errors.New("Authentication failed: password not specified")
	case authzid != "" && authzid != user:
		return nil, "", errors.New("Authentication failed: Client requested an authorization id that is different from username")
	}
	want, ok := p.users[user]
	// Digests of equal length, compared even for an unknown user, so that
	// the answer's time tells neither the password's length nor whether
	// the user exists.
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256(pass)
	if subtle.ConstantTimeCompare(w[:], g[:]) != 1 || !ok {
		return nil, "", errors.New("Authentication failed: Invalid username or password")
	}
	return nil, user, nil
}
