package auth

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TestScramRFC7677 runs the SCRAM-SHA-256 example of RFC 7677 section 3
// against the server side.
func TestScramRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := SaltedPassword(metadata.ScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	stored, server := ScramKeys(metadata.ScramSHA256, salted)
	cred := metadata.ScramCredential{Salt: salt, StoredKey: stored, ServerKey: server, Iterations: 4096}
	lookup := func(k metadata.ScramKey) (metadata.ScramCredential, bool) {
		return cred, k == metadata.ScramKey{User: "user", Mechanism: metadata.ScramSHA256}
	}
	defer func(f func() string) { newNonce = f }(newNonce)
	newNonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }

	const final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	x := NewScram(metadata.ScramSHA256, lookup)
	first, user, err := x.Next([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || user != "" || string(first) != "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" {
		t.Fatalf("server first %q user %q err %v", first, user, err)
	}
	last, user, err := x.Next([]byte(final))
	if err != nil || user != "user" || string(last) != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server final %q user %q err %v", last, user, err)
	}

	// librdkafka sends its nonce twice: the final nonce need only end
	// with the server's, as Kafka checks it.
	x = NewScram(metadata.ScramSHA256, lookup)
	if _, _, err := x.Next([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := x.Next([]byte(strings.Replace(final, "r=", "r=rOprNGfwEbeRWgbNEkqO", 1))); err == nil || !strings.Contains(err.Error(), "Invalid user credentials") {
		t.Fatalf("a doubled nonce: %v, want the proof (not the nonce) refused", err)
	}

	// A wrong proof, a wrong nonce, an unknown user and another user's
	// authorization id all fail.
	for _, tc := range []struct{ first, final, want string }{
		{"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", strings.Replace(final, "p=dHz", "p=dHy", 1), "Invalid user credentials"},
		{"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", strings.Replace(final, "r=rOpr", "r=xOpr", 1), "Invalid client nonce"},
		{"n,,n=bob,r=rOprNGfwEbeRWgbNEkqO", "", "Invalid user credentials"},
		{"n,a=bob,n=user,r=rOprNGfwEbeRWgbNEkqO", "", "authorization id"},
		{"p=tls-unique,,n=user,r=x", "", "channel binding"},
	} {
		x := NewScram(metadata.ScramSHA256, lookup)
		_, _, err := x.Next([]byte(tc.first))
		if err == nil {
			_, _, err = x.Next([]byte(tc.final))
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q / %q: %v, want %q", tc.first, tc.final, err, tc.want)
		}
	}
}

func TestPlain(t *testing.T) {
	users, err := PlainUsers(`org.apache.kafka.common.security.plain.PlainLoginModule required
		username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a \"quoted\" one";`)
	if err != nil || len(users) != 2 || users["admin"] != "admin-secret" || users["alice"] != `a "quoted" one` {
		t.Fatalf("users %v, err %v", users, err)
	}
	for _, tc := range []struct {
		msg, user, err string
	}{
		{"\x00admin\x00admin-secret", "admin", ""},
		{"admin\x00admin\x00admin-secret", "admin", ""},
		{"\x00admin\x00wrong", "", "Invalid username or password"},
		{"\x00nobody\x00admin-secret", "", "Invalid username or password"},
		{"alice\x00admin\x00admin-secret", "", "authorization id"},
		{"\x00\x00x", "", "username not specified"},
		{"admin-secret", "", "expected 3 tokens"},
	} {
		_, user, err := NewPlain(users).Next([]byte(tc.msg))
		if user != tc.user || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: user %q err %v; want %q %q", tc.msg, user, err, tc.user, tc.err)
		}
	}
	if _, err := PlainUsers(`PlainLoginModule required user_a="x"`); err == nil {
		t.Error("a JAAS line without its ';' was read")
	}
}
