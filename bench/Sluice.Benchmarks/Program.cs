using BenchmarkDotNet.Running;
using Sluice.Benchmarks.Log;

// `quick`, `log`, `metadata` are Stopwatch harnesses (seconds, not minutes); anything else goes to BenchmarkDotNet.
switch (args.FirstOrDefault())
{
    case "quick":
        CommitLogBench.Quick();
        break;
    case "log":
        CommitLogBench.Full(args.Skip(1).ToArray());
        break;
    case "metadata":
        await Sluice.Benchmarks.Metadata.MetadataBench.RunAsync(args[1..]);
        break;
    default:
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        break;
}
