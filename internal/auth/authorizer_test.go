package auth

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/metadata"
)

func TestAuthorizer(t *testing.T) {
	const (
		topic   = kmsg.ACLResourceTypeTopic
		group   = kmsg.ACLResourceTypeGroup
		allow   = int8(kmsg.ACLPermissionTypeAllow)
		deny    = int8(kmsg.ACLPermissionTypeDeny)
		literal = metadata.ACLPatternLiteral
		prefix  = metadata.ACLPatternPrefixed
	)
	acl := func(rt kmsg.ACLResourceType, name string, pt int8, principal, host string, op kmsg.ACLOperation, perm int8) metadata.ACL {
		return metadata.ACL{ResourceType: int8(rt), ResourceName: name, PatternType: pt, Principal: principal, Host: host, Operation: int8(op), Permission: perm}
	}
	acls := map[[16]byte]metadata.ACL{}
	for i, a := range []metadata.ACL{
		acl(topic, "orders", literal, "User:alice", "*", kmsg.ACLOperationRead, allow),
		acl(topic, "orders", literal, "User:alice", "10.0.0.9", kmsg.ACLOperationAll, deny),
		acl(topic, "pay", prefix, "User:bob", "*", kmsg.ACLOperationWrite, allow),
		acl(topic, "payroll", literal, "User:bob", "*", kmsg.ACLOperationWrite, deny),
		acl(topic, "*", literal, "User:*", "*", kmsg.ACLOperationAlterConfigs, allow),
		acl(group, "g", literal, "User:alice", "*", kmsg.ACLOperationRead, deny),
		acl(group, "g", literal, "User:alice", "*", kmsg.ACLOperationDescribe, allow),
	} {
		acls[[16]byte{byte(i + 1)}] = a
	}
	a := &Authorizer{SuperUsers: ParseSuperUsers("User:admin; User:ops")}
	open := &Authorizer{AllowIfNoACL: true}
	for _, tc := range []struct {
		az        *Authorizer
		principal string
		host      string
		op        kmsg.ACLOperation
		rt        kmsg.ACLResourceType
		name      string
		want      bool
	}{
		{a, "User:alice", "10.0.0.1", kmsg.ACLOperationRead, topic, "orders", true},
		{a, "User:alice", "10.0.0.1", kmsg.ACLOperationDescribe, topic, "orders", true}, // READ implies DESCRIBE
		{a, "User:alice", "10.0.0.1", kmsg.ACLOperationWrite, topic, "orders", false},
		{a, "User:alice", "10.0.0.9", kmsg.ACLOperationRead, topic, "orders", false}, // DENY ALL from that host
		{a, "User:bob", "h", kmsg.ACLOperationWrite, topic, "payments", true},        // prefixed
		{a, "User:bob", "h", kmsg.ACLOperationWrite, topic, "payroll", false},        // a literal DENY wins
		{a, "User:bob", "h", kmsg.ACLOperationWrite, topic, "other", false},
		{a, "User:carol", "h", kmsg.ACLOperationDescribeConfigs, topic, "other", true}, // wildcard, ALTER_CONFIGS implies it
		{a, "User:carol", "h", kmsg.ACLOperationDescribeConfigs, group, "none", false}, // no ACL, not open
		{a, "User:alice", "h", kmsg.ACLOperationRead, group, "g", false},
		{a, "User:alice", "h", kmsg.ACLOperationDescribe, group, "g", true}, // a DENY of READ implies nothing
		{a, "User:admin", "h", kmsg.ACLOperationDelete, topic, "payroll", true},
		{open, "User:carol", "h", kmsg.ACLOperationRead, group, "none", true},    // no ACL for the resource
		{open, "User:carol", "h", kmsg.ACLOperationRead, topic, "orders", false}, // ACLs exist, none for carol
	} {
		if got := tc.az.Authorize(acls, tc.principal, tc.host, tc.op, tc.rt, tc.name); got != tc.want {
			t.Errorf("%s from %s, %v %v %q: %v, want %v", tc.principal, tc.host, tc.op, tc.rt, tc.name, got, tc.want)
		}
	}
}
