package controller

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// ErrInvalidACL is an ACL creation or filter Kafka's AclControlManager
// refuses with INVALID_REQUEST.
var ErrInvalidACL = errors.New("controller: invalid ACL")

// ErrTooManyACLChanges is a CreateAcls or DeleteAcls over maxQuotaRecords
// changes (POLICY_VIOLATION), as Kafka's BoundedListTooLongException.
var ErrTooManyACLChanges = errors.New("controller: too many ACL changes in one request")

// Wire values of the ACL enumerations the controller checks.
const (
	aclResourceUnknown, aclResourceAny    = 0, 1
	aclPatternUnknown                     = 0
	aclOperationUnknown, aclOperationAny  = 0, 1
	aclPermissionDeny, aclPermissionAllow = 2, 3
)

// CreateACLs adds the valid ACLs in one batch, as Kafka's createAcls: an
// ACL that exists already succeeds without a new record. It returns each
// creation's error.
func (c *Controller) CreateACLs(ctx context.Context, acls []metadata.ACL) ([]error, error) {
	errs := make([]error, len(acls))
	err := c.execVisible(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		existing := map[metadata.ACL]bool{}
		for _, a := range img.ACLs {
			existing[a] = true
		}
		var recs []metadata.Record
		for i, a := range acls {
			if errs[i] = validACL(a); errs[i] != nil || existing[a] {
				continue
			}
			existing[a] = true
			var id [16]byte
			for {
				rand.Read(id[:])
				if _, taken := img.ACLs[id]; !taken && id != ([16]byte{}) {
					break
				}
			}
			recs = append(recs, metadata.AccessControlEntryRecord{ID: id, ACL: a})
		}
		if len(recs) > maxQuotaRecords {
			return nil, fmt.Errorf("%w: %d ACLs in one request, at most %d", ErrTooManyACLChanges, len(recs), maxQuotaRecords)
		}
		return recs, nil
	})
	return errs, err
}

// DeleteACLs removes every ACL each filter matches, all in one batch, and
// returns what each filter matched (an ACL two filters match is listed
// under both, as in Kafka) or its error.
func (c *Controller) DeleteACLs(ctx context.Context, filters []metadata.ACLFilter) ([][]metadata.ACL, []error, error) {
	matched := make([][]metadata.ACL, len(filters))
	errs := make([]error, len(filters))
	err := c.execVisible(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		ids := slices.SortedFunc(maps.Keys(img.ACLs), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		removed := map[[16]byte]bool{}
		var recs []metadata.Record
		for i, f := range filters {
			matched[i] = nil
			if errs[i] = validACLFilter(f); errs[i] != nil {
				continue
			}
			for _, id := range ids {
				a := img.ACLs[id]
				if !f.Matches(a) {
					continue
				}
				matched[i] = append(matched[i], a)
				if !removed[id] {
					removed[id] = true
					recs = append(recs, metadata.RemoveAccessControlEntryRecord{ID: id})
				}
			}
		}
		if len(recs) > maxQuotaRecords {
			return nil, fmt.Errorf("%w: cannot remove more than %d ACLs in a single delete operation", ErrTooManyACLChanges, maxQuotaRecords)
		}
		return recs, nil
	})
	return matched, errs, err
}

func validACL(a metadata.ACL) error {
	switch {
	case !metadata.KnownACLCodes(a.ResourceType, a.PatternType, a.Operation, a.Permission):
		return fmt.Errorf("%w: an unknown resource type, pattern type, operation or permission code", ErrInvalidACL)
	case a.ResourceType == aclResourceUnknown || a.ResourceType == aclResourceAny:
		return fmt.Errorf("%w: Invalid resourceType %d", ErrInvalidACL, a.ResourceType)
	case a.PatternType != metadata.ACLPatternLiteral && a.PatternType != metadata.ACLPatternPrefixed:
		return fmt.Errorf("%w: Invalid patternType %d", ErrInvalidACL, a.PatternType)
	case a.Operation == aclOperationUnknown || a.Operation == aclOperationAny:
		return fmt.Errorf("%w: Invalid operation %d", ErrInvalidACL, a.Operation)
	case a.Permission != aclPermissionDeny && a.Permission != aclPermissionAllow:
		return fmt.Errorf("%w: Invalid permissionType %d", ErrInvalidACL, a.Permission)
	case a.ResourceName == "":
		return fmt.Errorf("%w: Resource name should not be empty", ErrInvalidACL)
	case !strings.Contains(a.Principal, ":"):
		return fmt.Errorf("%w: Could not parse principal %q: want Type:name, as User:alice", ErrInvalidACL, a.Principal)
	case a.Host == "":
		return fmt.Errorf("%w: an empty host (use * for every host)", ErrInvalidACL)
	}
	return nil
}

func validACLFilter(f metadata.ACLFilter) error {
	switch {
	case !metadata.KnownACLCodes(f.ResourceType, f.PatternType, f.Operation, f.Permission):
		return fmt.Errorf("%w: Unknown patternFilter or entryFilter.", ErrInvalidACL)
	case f.ResourceType == aclResourceUnknown || f.PatternType == aclPatternUnknown:
		return fmt.Errorf("%w: Unknown patternFilter.", ErrInvalidACL)
	case f.Operation == aclOperationUnknown || f.Permission == 0:
		return fmt.Errorf("%w: Unknown entryFilter.", ErrInvalidACL)
	}
	return nil
}
