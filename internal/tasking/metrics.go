package tasking

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pith-project/pith/internal/store"
)

type metrics struct {
	duration *prometheus.HistogramVec
	running  prometheus.Gauge
	waiting  prometheus.GaugeFunc
}

func newMetrics(st *store.Store) *metrics {
	return &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pith_task_duration_seconds",
			Help:    "Time from a task's start to its final state, by task name and final state.",
			Buckets: []float64{.005, .025, .1, .5, 1, 5, 30, 120, 600, 3600},
		}, []string{"name", "state"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pith_tasks_running",
			Help: "Tasks running in this process.",
		}),
		// Queue depth is global: read it from the database at scrape time.
		waiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pith_tasks_waiting",
			Help: "Tasks waiting to run (all processes).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := st.CountTasksInState(ctx, store.TaskWaiting)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.duration, m.running, m.waiting} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
