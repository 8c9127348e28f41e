using BenchmarkDotNet.Running;
using Sluice.Benchmarks.Grpc;

if (args is ["grpc", ..])
{
    return await GrpcTransportBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "nats")
{
    return await Sluice.Benchmarks.Nats.NatsThroughput.RunAsync(args[1..]);
}

if (args is ["metadata", ..])
{
    await Sluice.Benchmarks.Metadata.MetadataBench.RunAsync(args[1..]);
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
