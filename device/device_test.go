package device

import (
	"strings"
	"testing"

	"github.com/dormancy/dormancy/policy"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want policy.DeviceKind
	}{
		{"Chrome on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DevicePC},
		{"Edge on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", policy.DevicePC},
		{"Chrome on Mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DevicePC},
		{"Safari on Mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", policy.DevicePC},
		{"Chrome on Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DevicePC},
		{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", policy.DevicePC},
		{"Chrome on ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DevicePC},
		// Headless Chromium is automation, not somebody's computer.
		{"Headless Chromium default", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.85 Safari/537.36", policy.DeviceOther},
		{"iPhone Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", policy.DeviceSmartphone},
		{"iPhone Chrome", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", policy.DeviceSmartphone},
		{"Android Chrome phone", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", policy.DeviceSmartphone},
		{"Android Samsung Internet phone", "Mozilla/5.0 (Linux; Android 14; SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", policy.DeviceSmartphone},
		{"Android Firefox phone", "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", policy.DeviceSmartphone},
		{"iPad Safari", "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", policy.DeviceTablet},
		// iPadOS 13+ in its default desktop mode cannot be told from a Mac.
		{"iPad desktop mode", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", policy.DevicePC},
		{"Android Chrome tablet", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DeviceTablet},
		{"Android Chrome tablet reduced", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", policy.DeviceTablet},
		{"Android Firefox tablet", "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0", policy.DeviceTablet},
		{"Kindle Fire Silk", "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.4.1 like Chrome/131.0.6778.135 Safari/537.36", policy.DeviceTablet},
		{"Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", policy.DeviceOther},
		{"curl", "curl/8.5.0", policy.DeviceOther},
		{"Go client", "Go-http-client/1.1", policy.DeviceOther},
		{"empty", "", policy.DeviceOther},
		{"blank", "   ", policy.DeviceOther},
		{"garbage", "\x00\xff(;)/[]:", policy.DeviceOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.ua); got != tt.want {
				t.Errorf("Classify(%q) = %q, want %q", tt.ua, got, tt.want)
			}
		})
	}
}

// TestClassifyHuge guards the truncation: a client can make the header as
// long as the proxy in front allows. Allocations are counted rather than time
// measured, so the test does not depend on how busy the machine is; parsing
// the whole megabyte allocates about a million times.
func TestClassifyHuge(t *testing.T) {
	phone := "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 "
	huge := phone + strings.Repeat("a;", 1<<19)
	if got := Classify(huge); got != policy.DeviceSmartphone {
		t.Errorf("Classify(phone + 1 MB) = %q, want %q", got, policy.DeviceSmartphone)
	}
	if allocs := testing.AllocsPerRun(10, func() { Classify(huge) }); allocs > 5000 {
		t.Errorf("Classify(1 MB) made %.0f allocations, want at most 5000", allocs)
	}
}

func BenchmarkClassifyHuge(b *testing.B) {
	huge := strings.Repeat("a;", 1<<19)
	for b.Loop() {
		Classify(huge)
	}
}

func FuzzClassify(f *testing.F) {
	f.Fuzz(func(t *testing.T, ua string) {
		switch k := Classify(ua); k {
		case policy.DevicePC, policy.DeviceSmartphone, policy.DeviceTablet, policy.DeviceOther:
		default:
			t.Fatalf("Classify(%q) = %q, not one of the four kinds", ua, k)
		}
	})
}
