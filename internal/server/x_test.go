package server
import ("testing";"runtime";"github.com/twmb/franz-go/pkg/kmsg")
func TestX(t *testing.T){
 in:=[]byte("\x00\a\x00\x03\x00\x00\x00\t\x00\x04fuzz\x00}}}\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00")
 var m runtime.MemStats
 req, err := parseRequest(in, kmsgMaxVersion)
 runtime.ReadMemStats(&m)
 t.Logf("%v %+v alloc=%d", err, req, m.TotalAlloc)
 if req!=nil { b:=req.Body.AppendTo(nil); runtime.ReadMemStats(&m); t.Logf("%d %d %+v", len(b), m.TotalAlloc, req.Body.(*kmsg.ControlledShutdownRequest)) }
}
