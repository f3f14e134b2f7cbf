package metrics

// MetricNames returns the name of every metric the package exports.
func MetricNames() []string { return append([]string(nil), names...) }
