using BenchmarkDotNet.Running;
using Sluice.Benchmarks.Broker;
using Sluice.Benchmarks.Grpc;
using Sluice.Benchmarks.Log;

// Every mode below is a Stopwatch harness (seconds, not minutes); anything else goes to BenchmarkDotNet.
switch (args.FirstOrDefault())
{
    case "quick":
        CommitLogBench.Quick();
        return 0;
    case "log":
        CommitLogBench.Full(args.Skip(1).ToArray());
        return 0;
    case "metadata":
        await Sluice.Benchmarks.Metadata.MetadataBench.RunAsync(args[1..]);
        return 0;
    case "grpc":
        return await GrpcTransportBenchmark.RunAsync(args[1..]);
    case "nats":
        return await Sluice.Benchmarks.Nats.NatsThroughput.RunAsync(args[1..]);
    case "broker":
        return await BrokerBenchmark.RunAsync(args[1..]);
    case "client":
        return await Sluice.Benchmarks.Client.ClientThroughput.RunAsync(args[1..]);
    case "nats-broker":
        return await Sluice.Benchmarks.NatsBroker.NatsBrokerBenchmark.RunAsync(args[1..]);
    default:
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
}
