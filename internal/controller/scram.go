package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// SCRAM credential errors, with the Kafka codes the broker maps them to.
var (
	// ErrScramDuplicate is a user altered twice in one request
	// (DUPLICATE_RESOURCE).
	ErrScramDuplicate = errors.New("controller: A user credential cannot be altered twice in the same request")
	// ErrScramUnacceptable is an empty user name, too few or too many
	// iterations, or an empty salt or password (UNACCEPTABLE_CREDENTIAL).
	ErrScramUnacceptable = errors.New("controller: unacceptable SCRAM credential")
	// ErrScramMechanism is a mechanism that is not SCRAM-SHA-256 or -512
	// (UNSUPPORTED_SASL_MECHANISM).
	ErrScramMechanism = errors.New("controller: Unknown SCRAM mechanism")
	// ErrScramNotFound is the deletion of a credential that does not exist
	// (RESOURCE_NOT_FOUND).
	ErrScramNotFound = errors.New("controller: Attempt to delete a user credential that does not exist")
)

// ScramAlteration is one deletion or upsertion of AlterUserScramCredentials.
// An upsertion carries the keys derived from the salted password (the
// broker derives them, so the password never reaches the metadata log).
type ScramAlteration struct {
	metadata.ScramKey
	Delete bool
	// Iterations, Salt and the keys are an upsertion's; SaltedPassword is
	// empty when the request's was (refused).
	Iterations           int32
	Salt, SaltedPassword []byte
	StoredKey, ServerKey []byte
}

// ScramResult is one user's outcome.
type ScramResult struct {
	User string
	Err  error
}

// AlterUserScramCredentials applies the valid alterations together, as
// Kafka's ScramControlManager: a user may appear once in a request (its
// deletions first, then its upsertions); every one of a user's
// alterations is checked, and a user with an error is left unchanged.
// Results list the deleted users, then the upserted ones, then the
// failures.
func (c *Controller) AlterUserScramCredentials(ctx context.Context, alts []ScramAlteration) ([]ScramResult, error) {
	var results []ScramResult
	err := c.execVisible(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		results = results[:0]
		failed := map[string]error{}
		var failOrder []string
		fail := func(user string, err error) {
			if _, ok := failed[user]; !ok {
				failOrder = append(failOrder, user)
			}
			failed[user] = err
		}
		chosen := map[string]int{} // user -> index into alts
		var order []string
		for pass := 0; pass < 2; pass++ { // deletions, then upsertions
			for i, a := range alts {
				if a.Delete != (pass == 0) {
					continue
				}
				if _, bad := failed[a.User]; bad {
					continue
				}
				if _, dup := chosen[a.User]; dup {
					delete(chosen, a.User)
					fail(a.User, ErrScramDuplicate)
					continue
				}
				if err := validScram(img, a); err != nil {
					fail(a.User, err)
					continue
				}
				chosen[a.User] = i
				order = append(order, a.User)
			}
		}
		var recs []metadata.Record
		for _, user := range order {
			i, ok := chosen[user]
			if !ok {
				continue
			}
			a := alts[i]
			if a.Delete {
				recs = append(recs, metadata.RemoveUserScramCredentialRecord{ScramKey: a.ScramKey})
			} else {
				recs = append(recs, metadata.UserScramCredentialRecord{ScramKey: a.ScramKey, ScramCredential: metadata.ScramCredential{
					Salt: a.Salt, StoredKey: a.StoredKey, ServerKey: a.ServerKey, Iterations: a.Iterations,
				}})
			}
			results = append(results, ScramResult{User: user})
		}
		for _, user := range failOrder {
			results = append(results, ScramResult{User: user, Err: failed[user]})
		}
		return recs, nil
	})
	return results, err
}

func validScram(img *metadata.Image, a ScramAlteration) error {
	switch {
	case a.User == "":
		return fmt.Errorf("%w: Username must not be empty", ErrScramUnacceptable)
	case a.Mechanism.Name() == "":
		return ErrScramMechanism
	case a.Delete:
		if _, ok := img.ScramCredentials[a.ScramKey]; !ok {
			return ErrScramNotFound
		}
		return nil
	case a.Iterations < metadata.ScramMinIterations:
		return fmt.Errorf("%w: Too few iterations", ErrScramUnacceptable)
	case a.Iterations > metadata.ScramMaxIterations:
		return fmt.Errorf("%w: Too many iterations", ErrScramUnacceptable)
	case len(a.Salt) == 0 || len(a.SaltedPassword) == 0 || len(a.StoredKey) == 0 || len(a.ServerKey) == 0:
		return fmt.Errorf("%w: an empty salt or salted password", ErrScramUnacceptable)
	}
	return nil
}
