package auth

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Authorizer decides requests as Kafka's StandardAuthorizer does, from the
// ACLs of the metadata image:
//   - a super user may do everything;
//   - otherwise the ACLs of the resource apply: those of its name (literal),
//     of the wildcard name "*" and of every prefix of its name (prefixed),
//     for the principal or "User:*", from the host or "*";
//   - a matching DENY wins over any ALLOW; an ALLOW of READ, WRITE, DELETE
//     or ALTER also allows DESCRIBE, and one of ALTER_CONFIGS allows
//     DESCRIBE_CONFIGS (a DENY implies nothing); ALL matches every
//     operation;
//   - a resource without any ACL at all is allowed only with
//     allow.everyone.if.no.acl.found.
type Authorizer struct {
	// SuperUsers are the principals of super.users ("User:admin").
	SuperUsers map[string]bool
	// AllowIfNoACL is allow.everyone.if.no.acl.found.
	AllowIfNoACL bool
}

// ClusterName is the one name of the CLUSTER resource.
const ClusterName = "kafka-cluster"

// Principal is the principal of a connection's user ("" is Kafka's
// ANONYMOUS).
func Principal(user string) string {
	if user == "" {
		return "User:ANONYMOUS"
	}
	return "User:" + user
}

// ParseSuperUsers reads super.users: principals separated by semicolons.
func ParseSuperUsers(v string) map[string]bool {
	out := map[string]bool{}
	for _, p := range strings.Split(v, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out[p] = true
		}
	}
	return out
}

// Authorize reports whether principal, connecting from host, may do op to
// the resource of type rt called name.
func (a *Authorizer) Authorize(acls map[[16]byte]metadata.ACL, principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if a.SuperUsers[principal] {
		return true
	}
	found, allowed := false, false
	for _, acl := range acls {
		if acl.ResourceType != int8(rt) || !patternMatches(acl, name) {
			continue
		}
		found = true
		if acl.Principal != principal && acl.Principal != "User:"+metadata.ACLWildcard {
			continue
		}
		if acl.Host != metadata.ACLWildcard && acl.Host != host {
			continue
		}
		switch kmsg.ACLPermissionType(acl.Permission) {
		case kmsg.ACLPermissionTypeDeny:
			if acl.Operation == int8(kmsg.ACLOperationAll) || acl.Operation == int8(op) {
				return false
			}
		case kmsg.ACLPermissionTypeAllow:
			if allows(kmsg.ACLOperation(acl.Operation), op) {
				allowed = true
			}
		}
	}
	if !found {
		return a.AllowIfNoACL
	}
	return allowed
}

func patternMatches(acl metadata.ACL, name string) bool {
	switch acl.PatternType {
	case metadata.ACLPatternLiteral:
		return acl.ResourceName == name || acl.ResourceName == metadata.ACLWildcard
	case metadata.ACLPatternPrefixed:
		return strings.HasPrefix(name, acl.ResourceName)
	}
	return false
}

// allows reports whether an ALLOW ACL of operation has allows op.
func allows(has, op kmsg.ACLOperation) bool {
	switch {
	case has == kmsg.ACLOperationAll, has == op:
		return true
	case op == kmsg.ACLOperationDescribe:
		return has == kmsg.ACLOperationRead || has == kmsg.ACLOperationWrite || has == kmsg.ACLOperationDelete || has == kmsg.ACLOperationAlter
	case op == kmsg.ACLOperationDescribeConfigs:
		return has == kmsg.ACLOperationAlterConfigs
	}
	return false
}
