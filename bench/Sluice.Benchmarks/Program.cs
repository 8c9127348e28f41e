using BenchmarkDotNet.Running;

// "client": the Sluice.Client throughput/allocation harness (see Client/ClientThroughput.cs).
if (args.Length > 0 && args[0] == "client")
{
    return await Sluice.Benchmarks.Client.ClientThroughput.RunAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
