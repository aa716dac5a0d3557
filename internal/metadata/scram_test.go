package metadata

import (
	"errors"
	"testing"
)

func TestImageScramCredentials(t *testing.T) {
	alice256 := ScramKey{User: "alice", Mechanism: ScramSHA256}
	alice512 := ScramKey{User: "alice", Mechanism: ScramSHA512}
	cred := ScramCredential{Salt: []byte("s"), StoredKey: []byte("k1"), ServerKey: []byte("k2"), Iterations: 4096}
	base := mustApply(t, &Image{},
		UserScramCredentialRecord{ScramKey: alice256, ScramCredential: cred},
		UserScramCredentialRecord{ScramKey: alice512, ScramCredential: cred})
	next := mustApply(t, base, RemoveUserScramCredentialRecord{ScramKey: alice256})
	if len(base.ScramCredentials) != 2 || len(next.ScramCredentials) != 1 {
		t.Fatalf("base %d credentials, next %d; want 2 and 1", len(base.ScramCredentials), len(next.ScramCredentials))
	}
	if _, ok := next.ScramCredentials[alice512]; !ok {
		t.Fatal("the SHA-512 credential went with the SHA-256 one")
	}
	out, err := DecodeImage(base.Encode())
	if err != nil || string(out.Encode()) != string(base.Encode()) || out.ScramCredentials[alice512].Iterations != 4096 {
		t.Fatalf("round trip: %v %v", err, out.ScramCredentials)
	}
	for _, bad := range []Record{
		RemoveUserScramCredentialRecord{ScramKey: alice256}, // already gone in next
		UserScramCredentialRecord{ScramKey: ScramKey{Mechanism: ScramSHA256}, ScramCredential: cred},
		UserScramCredentialRecord{ScramKey: ScramKey{User: "bob", Mechanism: 3}, ScramCredential: cred},
		UserScramCredentialRecord{ScramKey: ScramKey{User: "bob", Mechanism: ScramSHA256}},
	} {
		if _, err := next.Apply(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%+v: %v, want ErrInvalidRecord", bad, err)
		}
	}
	if ScramMechanismNamed("SCRAM-SHA-512") != ScramSHA512 || ScramMechanismNamed("PLAIN") != 0 {
		t.Fatal("ScramMechanismNamed")
	}
}
