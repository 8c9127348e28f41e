// Appends to a commit log with the Always durability policy from several tasks at once and
// prints "ack <baseOffset> <count> <tag>" for every acknowledged batch, until it is killed.
// Record i of a batch has the value "<tag>:<i>", so the parent can check every acknowledged record.
using System.Text;
using Sluice.Storage.Log;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: Sluice.Storage.CrashChild <log directory> [run id]");
    return 2;
}

var run = args.Length > 1 ? args[1] : "0";
var options = CommitLogOptions.Default with { Durability = DurabilityPolicy.Always, SegmentMaxBytes = 64 * 1024 };
using var log = CommitLog.Open(args[0], options);
var output = Console.Out;
var gate = new Lock();
Console.WriteLine($"ready {log.NextOffset}");

var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
{
    var random = new Random((w * 7919) + run.GetHashCode(StringComparison.Ordinal));
    for (var n = 0; ; n++)
    {
        var tag = $"{run}-{w}-{n}";
        var count = random.Next(1, 20);
        var batch = new LogRecord[count];
        for (var i = 0; i < count; i++)
        {
            batch[i] = new LogRecord { Timestamp = n, Value = Encoding.UTF8.GetBytes($"{tag}:{i}:{new string('x', random.Next(0, 300))}") };
        }

        var offset = log.Append(batch);
        lock (gate)
        {
            output.WriteLine($"ack {offset} {count} {tag}");
            output.Flush();
        }
    }
})).ToArray();

await Task.WhenAll(writers);
return 0;
