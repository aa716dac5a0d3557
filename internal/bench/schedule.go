package bench

import "time"

// Schedule is the intended send time of each record under a target rate:
// record i (from 0) is due at Start + i/Rate. A Rate of 0 or less means
// unthrottled: every record is due at Start.
type Schedule struct {
	Start time.Time
	Rate  float64 // records per second across all producers
}

// Offset is how long after Start record i is due.
func (s Schedule) Offset(i int64) time.Duration {
	if s.Rate <= 0 {
		return 0
	}
	// i*1e9/Rate in float64 is exact to well under a nanosecond for any
	// i below 2^53/1e9 (about 9 million seconds of records at 1/s).
	return time.Duration(float64(i) * float64(time.Second) / s.Rate)
}

// Intended is when record i is due.
func (s Schedule) Intended(i int64) time.Time { return s.Start.Add(s.Offset(i)) }

// Due is how many records are due by now (records 0..Due-1), capped at limit.
func (s Schedule) Due(now time.Time, limit int64) int64 {
	if s.Rate <= 0 {
		return limit
	}
	el := now.Sub(s.Start)
	if el < 0 {
		return 0
	}
	n := int64(el.Seconds()*s.Rate) + 1
	return min(n, limit)
}
