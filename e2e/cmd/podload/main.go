// Command podload creates Pods through a kube-apiserver at a fixed rate and prints the
// latency the client saw (p50, p99, max) and how many creates failed. With volguard
// registered, every create passes through its webhook; the suite runs it with and without
// the webhook to measure what volguard adds (e2e/bench.sh).
//
//	podload --dir D --namespace load --rate 200 --duration 20s [--dry-run]
//
// D is the cluster directory of `cluster up` (admin client certificate, CA, state.json).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

func main() {
	dir := flag.String("dir", "", "cluster directory of `cluster up`")
	ns := flag.String("namespace", "load", "namespace to create the Pods in")
	rate := flag.Int("rate", 50, "creates per second")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	dryRun := flag.Bool("dry-run", false, "dryRun=All: admission runs, nothing is stored")
	flag.Parse()
	client, server, err := connect(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		os.Exit(1)
	}
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/pods", server, *ns)
	if *dryRun {
		url += "?dryRun=All"
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		firstErr  string
		wg        sync.WaitGroup
	)
	interval := time.Second / time.Duration(*rate)
	total := int(duration.Seconds() * float64(*rate))
	start := time.Now()
	for i := 0; i < total; i++ {
		// Open loop: each create starts on schedule whether or not earlier ones finished.
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := pod(fmt.Sprintf("load-%d-%d", start.UnixNano()%100000, i))
			t := time.Now()
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			d := time.Since(t)
			status := 0
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			mu.Lock()
			defer mu.Unlock()
			if status != http.StatusCreated {
				failures++
				if firstErr == "" {
					firstErr = fmt.Sprintf("status %d, %v", status, err)
				}
				return
			}
			latencies = append(latencies, d)
		}(i)
	}
	wg.Wait()
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	q := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	fmt.Printf("rate=%d/s sent=%d ok=%d failed=%d p50=%.2fms p99=%.2fms max=%.2fms\n",
		*rate, total, len(latencies), failures, q(0.5), q(0.99), q(1))
	if failures > 0 {
		fmt.Fprintln(os.Stderr, "podload: first failure:", firstErr)
		os.Exit(1)
	}
}

// pod is an ordinary Pod (a sized emptyDir, one container): allowed by the default policy.
func pod(name string) []byte {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"app": "podload"}},
		"spec": map[string]any{
			"containers": []any{map[string]any{
				"name": "app", "image": "busybox:1.36",
				"volumeMounts": []any{map[string]any{"name": "scratch", "mountPath": "/scratch"}},
			}},
			"volumes": []any{map[string]any{"name": "scratch", "emptyDir": map[string]any{"sizeLimit": "1Gi"}}},
		},
	})
	return b
}

func connect(dir string) (*http.Client, string, error) {
	var st struct {
		APIServerPort int `json:"apiserverPort"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, "", err
	}
	pki := filepath.Join(dir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return nil, "", err
	}
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort), nil
}
