package metadata

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// ScramMechanism is a SCRAM mechanism as the wire names it (KIP-554): 1 is
// SCRAM-SHA-256, 2 SCRAM-SHA-512, anything else unknown.
type ScramMechanism int8

// The SCRAM mechanisms Kafka defines.
const (
	ScramSHA256 ScramMechanism = 1
	ScramSHA512 ScramMechanism = 2
)

// Iteration bounds of a SCRAM credential, as Kafka's: fewer than 4096
// (RFC 7677's minimum) or more than 16384 are refused.
const (
	ScramMinIterations = 4096
	ScramMaxIterations = 16384
)

// ScramMechanisms lists the known mechanisms in wire order.
var ScramMechanisms = []ScramMechanism{ScramSHA256, ScramSHA512}

// Name is the mechanism's SASL name, "" if it is not one.
func (m ScramMechanism) Name() string {
	switch m {
	case ScramSHA256:
		return "SCRAM-SHA-256"
	case ScramSHA512:
		return "SCRAM-SHA-512"
	}
	return ""
}

// ScramMechanismNamed is the mechanism with SASL name n, 0 if none.
func ScramMechanismNamed(n string) ScramMechanism {
	for _, m := range ScramMechanisms {
		if m.Name() == n {
			return m
		}
	}
	return 0
}

// ScramKey names one credential: a user's for one mechanism.
type ScramKey struct {
	User      string
	Mechanism ScramMechanism
}

// ScramCredential is what a broker keeps to check a SCRAM login (RFC 5802):
// never the password, only the salt, the iteration count and the two keys
// derived from the salted password.
type ScramCredential struct {
	Salt, StoredKey, ServerKey []byte
	Iterations                 int32
}

// UserScramCredentialRecord sets a user's credential for one mechanism, as
// Kafka's record of the same name.
type UserScramCredentialRecord struct {
	ScramKey
	ScramCredential
}

// RemoveUserScramCredentialRecord deletes one credential.
type RemoveUserScramCredentialRecord struct {
	ScramKey
}

// The SCRAM record types.
const (
	TypeUserScramCredential       RecordType = 13
	TypeRemoveUserScramCredential RecordType = 14
)

// Type implements Record.
func (UserScramCredentialRecord) Type() RecordType { return TypeUserScramCredential }

// Type implements Record.
func (RemoveUserScramCredentialRecord) Type() RecordType { return TypeRemoveUserScramCredential }

func (k ScramKey) appendKey(b []byte) []byte {
	return append(appendString(b, k.User), byte(k.Mechanism))
}

func (r UserScramCredentialRecord) appendFields(b []byte) []byte {
	b = r.appendKey(b)
	b = appendString(b, string(r.Salt))
	b = appendString(b, string(r.StoredKey))
	b = appendString(b, string(r.ServerKey))
	return appendInt32(b, r.Iterations)
}

func (r RemoveUserScramCredentialRecord) appendFields(b []byte) []byte { return r.appendKey(b) }

func (r *reader) scramKey() ScramKey {
	return ScramKey{User: r.string(), Mechanism: ScramMechanism(r.int8())}
}

// ownedBytes reads a length-prefixed byte string into its own memory, as a
// decoded record must not alias its input.
func (r *reader) ownedBytes() []byte { return slices.Clone(r.bytes()) }

func decodeUserScramCredential(r *reader) UserScramCredentialRecord {
	return UserScramCredentialRecord{ScramKey: r.scramKey(), ScramCredential: ScramCredential{
		Salt: r.ownedBytes(), StoredKey: r.ownedBytes(), ServerKey: r.ownedBytes(), Iterations: r.int32(),
	}}
}

func (b *builder) scram() map[ScramKey]ScramCredential {
	if !b.ownScram {
		b.img.ScramCredentials = cloneMap(b.img.ScramCredentials)
		b.ownScram = true
	}
	return b.img.ScramCredentials
}

func validScramKey(k ScramKey) error {
	if k.User == "" || k.Mechanism.Name() == "" {
		return fmt.Errorf("%w: SCRAM credential user %q mechanism %d", ErrInvalidRecord, k.User, k.Mechanism)
	}
	return nil
}

func (b *builder) setScramCredential(r UserScramCredentialRecord) error {
	if err := validScramKey(r.ScramKey); err != nil {
		return err
	}
	if r.Iterations <= 0 || len(r.Salt) == 0 || len(r.StoredKey) == 0 || len(r.ServerKey) == 0 {
		return fmt.Errorf("%w: SCRAM credential of %q without salt, keys or iterations", ErrInvalidRecord, r.User)
	}
	b.scram()[r.ScramKey] = r.ScramCredential
	return nil
}

func (b *builder) removeScramCredential(r RemoveUserScramCredentialRecord) error {
	if err := validScramKey(r.ScramKey); err != nil {
		return err
	}
	if _, ok := b.img.ScramCredentials[r.ScramKey]; !ok {
		// Kafka's replay fails the same way: the controller deletes only
		// what exists.
		return fmt.Errorf("%w: no SCRAM credential of %q for %s", ErrInvalidRecord, r.User, r.Mechanism.Name())
	}
	delete(b.scram(), r.ScramKey)
	return nil
}

func compareScramKey(a, b ScramKey) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Mechanism, b.Mechanism))
}

// scramRecords are the records that rebuild the image's SCRAM credentials.
func (img *Image) scramRecords() []Record {
	var recs []Record
	for _, k := range slices.SortedFunc(maps.Keys(img.ScramCredentials), compareScramKey) {
		recs = append(recs, UserScramCredentialRecord{ScramKey: k, ScramCredential: img.ScramCredentials[k]})
	}
	return recs
}
