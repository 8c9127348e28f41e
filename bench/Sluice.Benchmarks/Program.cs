using BenchmarkDotNet.Running;

if (args is ["metadata", ..])
{
    await Sluice.Benchmarks.Metadata.MetadataBench.RunAsync(args[1..]);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
