package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// Exchange is one connection's run of a SASL mechanism (server.SASLExchange).
type Exchange interface {
	// Next takes the client's token and returns the server's; user is set
	// once the client is authenticated.
	Next(token []byte) (challenge []byte, user string, err error)
}

// Mechanism names.
const (
	MechanismPlain = "PLAIN"
)

func scramHash(m metadata.ScramMechanism) func() hash.Hash {
	if m == metadata.ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	mac := hmac.New(h, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// SaltedPassword is RFC 5802's Hi(password, salt, iterations).
func SaltedPassword(m metadata.ScramMechanism, password string, salt []byte, iterations int) ([]byte, error) {
	h := scramHash(m)
	return pbkdf2.Key(h, password, salt, iterations, h().Size())
}

// ScramKeys derives what a broker keeps from a salted password (the
// AlterUserScramCredentials upsertion): StoredKey = H(HMAC(salted, "Client
// Key")), ServerKey = HMAC(salted, "Server Key").
func ScramKeys(m metadata.ScramMechanism, salted []byte) (storedKey, serverKey []byte) {
	h := scramHash(m)
	sum := h()
	sum.Write(hmacOf(h, salted, "Client Key"))
	return sum.Sum(nil), hmacOf(h, salted, "Server Key")
}

// scram is the server side of SCRAM (RFC 5802, 7677): client-first,
// server-first, client-final, server-final.
type scram struct {
	mech   metadata.ScramMechanism
	lookup func(metadata.ScramKey) (metadata.ScramCredential, bool)

	step             int
	user             string
	cred             metadata.ScramCredential
	gs2Header, nonce string
	clientFirstBare  string
	serverFirst      string
}

// NewScram starts a SCRAM exchange of mechanism m; lookup finds a user's
// credential (the current metadata image's).
func NewScram(m metadata.ScramMechanism, lookup func(metadata.ScramKey) (metadata.ScramCredential, bool)) Exchange {
	return &scram{mech: m, lookup: lookup}
}

// newNonce is the server's part of the nonce (a test fixes it).
var newNonce = rand.Text

var errScramCredentials = errors.New("Authentication failed: Invalid user credentials")

func (s *scram) Next(token []byte) ([]byte, string, error) {
	s.step++
	switch s.step {
	case 1:
		out, err := s.clientFirst(string(token))
		return out, "", err
	case 2:
		out, err := s.clientFinal(string(token))
		if err != nil {
			return nil, "", err
		}
		return out, s.user, nil
	}
	return nil, "", errors.New("Authentication failed: unexpected SCRAM message after the exchange")
}

// clientFirst reads "gs2-header client-first-message-bare":
// "n,[a=authzid],n=user,r=nonce[,extensions]".
func (s *scram) clientFirst(msg string) ([]byte, error) {
	fields := strings.SplitN(msg, ",", 3)
	if len(fields) != 3 || (fields[0] != "n" && fields[0] != "y") {
		return nil, fmt.Errorf("Authentication failed: invalid SCRAM client first message (channel binding is not supported)")
	}
	authzid := ""
	if fields[1] != "" {
		a, ok := strings.CutPrefix(fields[1], "a=")
		if !ok {
			return nil, errors.New("Authentication failed: invalid SCRAM authorization id")
		}
		authzid = saslName(a)
	}
	s.gs2Header = fields[0] + "," + fields[1] + ","
	s.clientFirstBare = fields[2]
	attrs := strings.Split(fields[2], ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) == 2 {
		return nil, errors.New("Authentication failed: invalid SCRAM client first message")
	}
	s.user = saslName(attrs[0][2:])
	if authzid != "" && authzid != s.user {
		return nil, errors.New("Authentication failed: Client requested an authorization id that is different from username")
	}
	cred, ok := s.lookup(metadata.ScramKey{User: s.user, Mechanism: s.mech})
	if !ok || s.user == "" {
		return nil, errScramCredentials
	}
	if cred.Iterations < metadata.ScramMinIterations {
		return nil, fmt.Errorf("Authentication failed: iterations %d is less than the minimum %d for %s", cred.Iterations, metadata.ScramMinIterations, s.mech.Name())
	}
	s.cred = cred
	s.nonce = attrs[1][2:] + newNonce()
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(int(cred.Iterations))
	return []byte(s.serverFirst), nil
}

// clientFinal reads "c=binding,r=nonce[,extensions],p=proof" and answers
// "v=server signature".
func (s *scram) clientFinal(msg string) ([]byte, error) {
	withoutProof, proofAttr, ok := cutLast(msg, ",p=")
	if !ok {
		return nil, errors.New("Authentication failed: invalid SCRAM client final message")
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return nil, errors.New("Authentication failed: invalid SCRAM channel binding")
	}
	// Kafka checks only that the nonce ends with the server's, and
	// librdkafka relies on it: it sends its own nonce again in front.
	if !strings.HasPrefix(attrs[1], "r=") || !strings.HasSuffix(attrs[1], s.nonce) {
		return nil, errors.New("Authentication failed: Invalid client nonce in the final client message.")
	}
	proof, err := base64.StdEncoding.DecodeString(proofAttr)
	if err != nil {
		return nil, errors.New("Authentication failed: invalid SCRAM client proof")
	}
	h := scramHash(s.mech)
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	signature := hmacOf(h, s.cred.StoredKey, authMessage)
	if len(proof) != len(signature) {
		return nil, errScramCredentials
	}
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, signature)
	sum := h()
	sum.Write(clientKey)
	if subtle.ConstantTimeCompare(sum.Sum(nil), s.cred.StoredKey) != 1 {
		return nil, errScramCredentials
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(h, s.cred.ServerKey, authMessage))), nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// saslName decodes RFC 5802's saslname escapes.
func saslName(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}
