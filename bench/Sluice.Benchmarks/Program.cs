using BenchmarkDotNet.Running;
using Sluice.Benchmarks.Log;

// `quick` and `log` are Stopwatch harnesses (seconds, not minutes); anything else goes to BenchmarkDotNet.
switch (args.FirstOrDefault())
{
    case "quick":
        CommitLogBench.Quick();
        break;
    case "log":
        CommitLogBench.Full(args.Skip(1).ToArray());
        break;
    default:
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        break;
}
