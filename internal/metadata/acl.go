package metadata

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ACL is one access control entry, as Kafka's StandardAcl: a resource
// pattern (type, name, literal or prefixed) and who may or may not do what
// to it from where. The enumerations carry Kafka's wire values
// (kmsg.ACLResourceType, ACLResourcePatternType, ACLOperation,
// ACLPermissionType).
type ACL struct {
	ResourceType int8
	ResourceName string
	PatternType  int8
	Principal    string // "User:alice", "User:*"
	Host         string // an IP address or "*"
	Operation    int8
	Permission   int8
}

// Wire values the metadata package itself needs.
const (
	aclResourceAny          = 1
	aclPatternAny           = 1
	aclPatternMatch         = 2
	ACLPatternLiteral  int8 = 3
	ACLPatternPrefixed int8 = 4
	aclOperationAny         = 1
	aclPermissionAny        = 1
	// ACLWildcard is the resource name, principal name or host that
	// matches every one.
	ACLWildcard = "*"
)

// ACLFilter selects ACLs, as Kafka's AclBindingFilter: a nil name,
// principal or host and the ANY values match everything; pattern type
// MATCH matches the literal ACLs of the name, the wildcard one and the
// prefixed ACLs the name starts with.
type ACLFilter struct {
	ResourceType          int8
	ResourceName          *string
	PatternType           int8
	Principal, Host       *string
	Operation, Permission int8
}

// Matches reports whether f selects a.
func (f ACLFilter) Matches(a ACL) bool {
	switch {
	case f.ResourceType != aclResourceAny && f.ResourceType != a.ResourceType,
		f.PatternType != aclPatternAny && f.PatternType != aclPatternMatch && f.PatternType != a.PatternType,
		f.Principal != nil && *f.Principal != a.Principal,
		f.Host != nil && *f.Host != a.Host,
		f.Operation != aclOperationAny && f.Operation != a.Operation,
		f.Permission != aclPermissionAny && f.Permission != a.Permission:
		return false
	case f.ResourceName == nil:
		return true
	case f.PatternType == aclPatternAny || f.PatternType == a.PatternType:
		return *f.ResourceName == a.ResourceName
	case a.PatternType == ACLPatternLiteral: // MATCH
		return *f.ResourceName == a.ResourceName || a.ResourceName == ACLWildcard
	case a.PatternType == ACLPatternPrefixed:
		return strings.HasPrefix(*f.ResourceName, a.ResourceName)
	}
	return false
}

// The ranges of the known ACL enumeration codes (Kafka 4's); any other
// code is UNKNOWN, as Kafka's fromCode reads it.
const (
	aclResourceMax   = 7  // USER
	aclOperationMax  = 15 // TWO_PHASE_COMMIT
	aclPatternMax    = ACLPatternPrefixed
	aclPermissionMax = 3 // ALLOW
)

// KnownACLCodes reports whether every code of an ACL or filter is one Kafka
// knows (UNKNOWN, 0, excluded).
func KnownACLCodes(resourceType, patternType, operation, permission int8) bool {
	return resourceType >= 1 && resourceType <= aclResourceMax && patternType >= 1 && patternType <= aclPatternMax &&
		operation >= 1 && operation <= aclOperationMax && permission >= 1 && permission <= aclPermissionMax
}

// AccessControlEntryRecord adds an ACL under an id, as Kafka's record of
// the same name.
type AccessControlEntryRecord struct {
	ID [16]byte
	ACL
}

// RemoveAccessControlEntryRecord removes the ACL of an id.
type RemoveAccessControlEntryRecord struct {
	ID [16]byte
}

// The ACL record types.
const (
	TypeAccessControlEntry       RecordType = 15
	TypeRemoveAccessControlEntry RecordType = 16
)

// Type implements Record.
func (AccessControlEntryRecord) Type() RecordType { return TypeAccessControlEntry }

// Type implements Record.
func (RemoveAccessControlEntryRecord) Type() RecordType { return TypeRemoveAccessControlEntry }

func (r AccessControlEntryRecord) appendFields(b []byte) []byte {
	b = append(b, r.ID[:]...)
	b = append(b, byte(r.ResourceType))
	b = appendString(b, r.ResourceName)
	b = append(b, byte(r.PatternType))
	b = appendString(b, r.Principal)
	b = appendString(b, r.Host)
	return append(b, byte(r.Operation), byte(r.Permission))
}

func (r RemoveAccessControlEntryRecord) appendFields(b []byte) []byte { return append(b, r.ID[:]...) }

func decodeAccessControlEntry(r *reader) AccessControlEntryRecord {
	return AccessControlEntryRecord{ID: r.uuid(), ACL: ACL{
		ResourceType: r.int8(), ResourceName: r.string(), PatternType: r.int8(),
		Principal: r.string(), Host: r.string(), Operation: r.int8(), Permission: r.int8(),
	}}
}

func (b *builder) acls() map[[16]byte]ACL {
	if !b.ownACLs {
		b.img.ACLs = cloneMap(b.img.ACLs)
		b.ownACLs = true
	}
	return b.img.ACLs
}

func (b *builder) addACL(r AccessControlEntryRecord) error {
	a := r.ACL
	if r.ID == ([16]byte{}) || a.ResourceName == "" || a.Principal == "" || a.Host == "" ||
		(a.PatternType != ACLPatternLiteral && a.PatternType != ACLPatternPrefixed) {
		return fmt.Errorf("%w: ACL %+v", ErrInvalidRecord, a)
	}
	if _, dup := b.img.ACLs[r.ID]; dup {
		return fmt.Errorf("%w: ACL id %x exists", ErrInvalidRecord, r.ID)
	}
	b.acls()[r.ID] = a
	return nil
}

func (b *builder) removeACL(r RemoveAccessControlEntryRecord) error {
	if _, ok := b.img.ACLs[r.ID]; !ok {
		return fmt.Errorf("%w: no ACL with id %x", ErrInvalidRecord, r.ID)
	}
	delete(b.acls(), r.ID)
	return nil
}

// aclRecords are the records that rebuild the image's ACLs.
func (img *Image) aclRecords() []Record {
	var recs []Record
	for _, id := range slices.SortedFunc(maps.Keys(img.ACLs), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }) {
		recs = append(recs, AccessControlEntryRecord{ID: id, ACL: img.ACLs[id]})
	}
	return recs
}
