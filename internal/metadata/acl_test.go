package metadata

import (
	"errors"
	"testing"
)

func TestImageACLs(t *testing.T) {
	readOrders := ACL{ResourceType: 2, ResourceName: "orders", PatternType: ACLPatternLiteral, Principal: "User:alice", Host: "*", Operation: 3, Permission: 3}
	prefixed := ACL{ResourceType: 2, ResourceName: "ord", PatternType: ACLPatternPrefixed, Principal: "User:bob", Host: "*", Operation: 4, Permission: 2}
	wildcard := ACL{ResourceType: 2, ResourceName: ACLWildcard, PatternType: ACLPatternLiteral, Principal: "User:*", Host: "*", Operation: 8, Permission: 3}
	base := mustApply(t, &Image{},
		AccessControlEntryRecord{ID: [16]byte{1}, ACL: readOrders},
		AccessControlEntryRecord{ID: [16]byte{2}, ACL: prefixed},
		AccessControlEntryRecord{ID: [16]byte{3}, ACL: wildcard})
	next := mustApply(t, base, RemoveAccessControlEntryRecord{ID: [16]byte{1}})
	if len(base.ACLs) != 3 || len(next.ACLs) != 2 {
		t.Fatalf("base %d ACLs, next %d", len(base.ACLs), len(next.ACLs))
	}
	out, err := DecodeImage(base.Encode())
	if err != nil || string(out.Encode()) != string(base.Encode()) || out.ACLs[[16]byte{2}] != prefixed {
		t.Fatalf("round trip: %v %v", err, out.ACLs)
	}
	for _, bad := range []Record{
		RemoveAccessControlEntryRecord{ID: [16]byte{1}},
		AccessControlEntryRecord{ID: [16]byte{2}, ACL: readOrders},
		AccessControlEntryRecord{ID: [16]byte{4}, ACL: ACL{ResourceType: 2, ResourceName: "x", PatternType: 2, Principal: "User:a", Host: "*", Operation: 3, Permission: 3}},
	} {
		if _, err := next.Apply(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%+v: %v, want ErrInvalidRecord", bad, err)
		}
	}

	name := func(s string) *string { return &s }
	for _, tc := range []struct {
		f    ACLFilter
		want []ACL
	}{
		{ACLFilter{ResourceType: 1, PatternType: 1, Operation: 1, Permission: 1}, []ACL{readOrders, prefixed, wildcard}},
		{ACLFilter{ResourceType: 2, ResourceName: name("orders"), PatternType: 3, Operation: 1, Permission: 1}, []ACL{readOrders}},
		{ACLFilter{ResourceType: 2, ResourceName: name("orders"), PatternType: aclPatternMatch, Operation: 1, Permission: 1}, []ACL{readOrders, prefixed, wildcard}},
		{ACLFilter{ResourceType: 2, ResourceName: name("orders"), PatternType: 1, Operation: 1, Permission: 1}, []ACL{readOrders}},
		{ACLFilter{ResourceType: 1, PatternType: 1, Principal: name("User:bob"), Operation: 1, Permission: 2}, []ACL{prefixed}},
		{ACLFilter{ResourceType: 3, PatternType: 1, Operation: 1, Permission: 1}, nil},
	} {
		var got []ACL
		for _, a := range []ACL{readOrders, prefixed, wildcard} {
			if tc.f.Matches(a) {
				got = append(got, a)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("filter %+v matched %v, want %v", tc.f, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("filter %+v matched %v, want %v", tc.f, got, tc.want)
			}
		}
	}
}
