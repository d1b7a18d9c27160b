# The "Python SDK" section of the endpoint-metrics reference (shared/reference/
# endpoint-metrics-api.txt), unchanged but for the import line, the client construction and
# `event.from` written `event.from_` (`from` is a Python keyword). Run by
# tests/integration/read_client/test_reference_examples.py against a live Vitals.
import os
from pipeline import Client as TensorOneClient
import pandas as pd
import matplotlib.pyplot as plt
from datetime import datetime, timedelta

client = TensorOneClient(os.environ["VITALS_URL"], api_key=os.environ["VITALS_API_KEY"])

# Basic metrics retrieval
def get_endpoint_metrics(endpoint_id, timeframe="24h"):
    metrics = client.endpoints.get_metrics(
        endpoint_id=endpoint_id,
        timeframe=timeframe,
        metrics=["performance", "usage", "costs", "resources"]
    )
    
    print(f"Metrics for {endpoint_id} (last {timeframe}):")
    print(f"Total Executions: {metrics.summary.total_executions}")
    print(f"Success Rate: {metrics.summary.success_rate:.2f}%")
    print(f"Average Latency: {metrics.summary.average_latency:.2f}s")
    print(f"Total Cost: ${metrics.summary.total_cost:.2f}")
    
    return metrics

# Cost analysis and optimization
def analyze_costs(endpoint_id, timeframe="30d"):
    metrics = client.endpoints.get_metrics(
        endpoint_id=endpoint_id,
        timeframe=timeframe,
        metrics=["costs"]
    )
    
    costs = metrics.costs
    print(f"Cost Analysis for {endpoint_id}:")
    print(f"Total Cost: ${costs.total:.2f}")
    print(f"Daily Average: ${costs.trends.daily.average:.2f}")
    print(f"Monthly Projection: ${costs.trends.projection.monthly:.2f}")
    
    # Optimization recommendations
    if costs.optimization.potential_savings > 0:
        print(f"\nOptimization Opportunities:")
        print(f"Potential Savings: ${costs.optimization.potential_savings:.2f}")
        
        for suggestion in costs.optimization.suggestions:
            print(f"- {suggestion.description}")
            print(f"  Savings: ${suggestion.savings:.2f}")
            print(f"  Effort: {suggestion.effort}")
    
    return costs

# Performance trend analysis
def analyze_performance_trends(endpoint_id, timeframe="7d"):
    metrics = client.endpoints.get_metrics(
        endpoint_id=endpoint_id,
        timeframe=timeframe,
        granularity="1h",
        metrics=["performance"]
    )
    
    # Convert to pandas DataFrame for analysis
    latency_data = []
    for point in metrics.performance.latency.time_series:
        latency_data.append({
            'timestamp': point.timestamp,
            'avg_latency': point.avg,
            'p95_latency': point.p95,
            'p99_latency': point.p99
        })
    
    df = pd.DataFrame(latency_data)
    df['timestamp'] = pd.to_datetime(df['timestamp'])
    
    # Performance analysis
    avg_latency = df['avg_latency'].mean()
    latency_trend = df['avg_latency'].diff().mean()
    
    print(f"Performance Analysis:")
    print(f"Average Latency: {avg_latency:.2f}s")
    print(f"Latency Trend: {'Improving' if latency_trend < 0 else 'Degrading'}")
    print(f"95th Percentile: {df['p95_latency'].mean():.2f}s")
    print(f"99th Percentile: {df['p99_latency'].mean():.2f}s")
    
    return df

# Resource utilization monitoring
def monitor_resource_utilization(endpoint_id, timeframe="24h"):
    metrics = client.endpoints.get_metrics(
        endpoint_id=endpoint_id,
        timeframe=timeframe,
        granularity="15m",
        metrics=["resources"]
    )
    
    resources = metrics.resources
    gpu = resources.gpu
    
    print(f"Resource Utilization Analysis:")
    print(f"Average GPU Utilization: {gpu.utilization.average:.1f}%")
    print(f"Peak GPU Utilization: {gpu.utilization.peak:.1f}%")
    print(f"GPU Memory Usage: {gpu.memory.average:.1f}%")
    print(f"Resource Efficiency: {gpu.performance.efficiency:.1f}%")
    
    # Scaling analysis
    if resources.scaling.events:
        print(f"\nScaling Events:")
        for event in resources.scaling.events:
            print(f"- {event.timestamp}: {event.action} from {event.from_} to {event.to}")
            print(f"  Reason: {event.reason}")
    
    return resources

# Cold start analysis
def analyze_cold_starts(endpoint_id, timeframe="7d"):
    metrics = client.endpoints.get_metrics(
        endpoint_id=endpoint_id,
        timeframe=timeframe,
        metrics=["performance"]
    )
    
    cold_starts = metrics.cold_starts
    
    print(f"Cold Start Analysis:")
    print(f"Cold Start Count: {cold_starts.count}")
    print(f"Cold Start Rate: {cold_starts.rate:.2f}%")
    print(f"Average Duration: {cold_starts.average_duration:.1f}s")
    print(f"Latency Impact: +{cold_starts.impact.latency_increase:.1f}s")
    print(f"Cost Impact: +${cold_starts.impact.cost_increase:.2f}")
    
    if cold_starts.optimization.warm_pool_recommended:
        improvement = cold_starts.optimization.estimated_improvement
        print(f"\nOptimization Opportunity:")
        print(f"Warm pools could reduce latency by {improvement.latency_reduction:.1f}s")
        print(f"Estimated cost reduction: ${improvement.cost_reduction:.2f}")
    
    return cold_starts

# Comprehensive dashboard data
def create_dashboard_data(endpoint_ids, timeframe="24h"):
    """Create comprehensive dashboard data for multiple endpoints"""
    dashboard_data = []
    
    for endpoint_id in endpoint_ids:
        try:
            metrics = client.endpoints.get_metrics(
                endpoint_id=endpoint_id,
                timeframe=timeframe,
                metrics=["performance", "usage", "costs", "resources"]
            )
            
            dashboard_data.append({
                'endpoint_id': endpoint_id,
                'executions': metrics.summary.total_executions,
                'success_rate': metrics.summary.success_rate,
                'avg_latency': metrics.summary.average_latency,
                'p95_latency': metrics.summary.p95_latency,
                'total_cost': metrics.summary.total_cost,
                'gpu_utilization': metrics.resources.gpu.utilization.average,
                'error_rate': 100 - metrics.summary.success_rate,
                'cold_starts': metrics.cold_starts.count if metrics.cold_starts else 0
            })
            
        except Exception as e:
            print(f"Error fetching metrics for {endpoint_id}: {e}")
    
    df = pd.DataFrame(dashboard_data)
    return df

# Usage examples
if __name__ == "__main__":
    endpoint_id = "ep_1234567890abcdef"
    
    # Basic metrics
    metrics = get_endpoint_metrics(endpoint_id)
    
    # Cost analysis
    costs = analyze_costs(endpoint_id, "30d")
    
    # Performance trends
    perf_df = analyze_performance_trends(endpoint_id, "7d")
    
    # Resource monitoring
    resources = monitor_resource_utilization(endpoint_id)
    
    # Cold start analysis
    cold_starts = analyze_cold_starts(endpoint_id)
    
    # Dashboard for multiple endpoints
    endpoints = ["ep_1234567890abcdef", "ep_2345678901bcdefg"]
    dashboard_df = create_dashboard_data(endpoints)
    print("\nDashboard Summary:")
    print(dashboard_df.to_string(index=False))
