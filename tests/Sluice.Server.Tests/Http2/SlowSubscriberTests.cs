using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Http2;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Http2;

/// <summary>subscriptions.max.buffered.bytes: what clients that do not read can make the server hold, all together.</summary>
public sealed class SlowSubscriberTests
{
    [Fact]
    public async Task A_subscriber_that_never_reads_is_cut_with_resource_exhausted_once_unsent_output_passes_the_budget()
    {
        const long Budget = 2 << 20;
        const int Messages = 512;
        using var dir = new TempDirectory("sluice-slow");
        await using var server = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path, SubscriptionsMaxBufferedBytes = Budget });
        var listener = server.Grpc.NativeListener!;
        using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{server.Port}"));
        await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = "slow", Subject = "slow" }, CreateStreamResponse.Parser, CallTimeout);
        var value = ByteString.CopyFrom(new byte[64 << 10]);
        for (var i = 0; i < Messages; i++)
        {
            await channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = "slow", Value = value }, PublishResponse.Parser, CallTimeout);
        }

        // 32 MiB to send to a client that opens every window wide, keeps its socket buffer small and never reads.
        await using var slow = await RawH2Client.ConnectAsync(server.Port, receiveBufferSize: 16 << 10, read: false);
        var output = new ArrayBufferWriter<byte>();
        output.Write(Http2Frame.Preface);
        Http2Frame.WriteSettings(output, [(Http2Frame.SettingsInitialWindowSize, int.MaxValue)]);
        Http2Frame.WriteWindowUpdate(output, 0, int.MaxValue - Http2Frame.DefaultWindowSize);
        await slow.SendRawAsync(output.WrittenMemory);
        await slow.SendRequestAsync(1, endStream: false, "/proto.API/Subscribe");
        await slow.SendDataAsync(1, GrpcMessage(new SubscribeRequest { Stream = "slow", StartPosition = StartPosition.Earliest }), endStream: true);

        // A subscriber that reads gets everything meanwhile (checked below).
        var reading = Task.Run(async () =>
        {
            await using var reader = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "slow", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
            Assert.True(await reader.MoveNextAsync()); // handshake
            return await ReadToEndAsync(reader);
        });

        await WaitUntilAsync(() => Task.FromResult(listener.SlowClientsCut > 0), "the slow subscriber's connection to be cut", TimeSpan.FromSeconds(30));
        slow.StartReading(); // at once: a cut client that takes nothing for a second loses what was queued for it
        Assert.Equal(1, listener.SlowClientsCut);

        // Once it reads, it finds whole messages, then the status and the reason.
        var response = await slow.ReadResponseAsync(1);
        Assert.Equal(((int)GrpcStatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), response.Trailer("grpc-status"));
        Assert.StartsWith("subscriber too slow: ", Uri.UnescapeDataString(response.Trailer("grpc-message")!), StringComparison.Ordinal);
        var received = CountMessages(response.Body);
        Assert.InRange(received, 2, Messages / 2); // the handshake and what the budget let queue (2 of 32 MiB, plus the kernel's socket buffers), each whole
        var goAway = await slow.WaitForGoAwayAsync();
        Assert.Equal(Http2ErrorCode.EnhanceYourCalm, goAway.ErrorCode);
        Assert.StartsWith("subscriber too slow: ", Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)), StringComparison.Ordinal);
        await slow.WaitForCloseAsync();

        var (messages, error) = await reading.WaitAsync(CallTimeout);
        Assert.Equal("Stop offset reached", error?.Detail);
        Assert.Equal(Messages, messages.Count);
        await WaitUntilAsync(() => Task.FromResult(listener.OutputBudget.Total == 0), "the cut connection's bytes to leave the budget");

        // The server goes on serving.
        var health = await channel.UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest(), FetchMetadataResponse.Parser, CallTimeout);
        Assert.Single(health.StreamMetadata);
    }

    private static byte[] GrpcMessage(IMessage message)
    {
        var payload = message.ToByteArray();
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>Counts the gRPC messages in a response body, failing on a cut one.</summary>
    private static int CountMessages(byte[] body)
    {
        var count = 0;
        var at = 0;
        while (at < body.Length)
        {
            Assert.True(at + 5 <= body.Length, "the body ends inside a message prefix");
            var length = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(at + 1));
            Assert.True(at + 5 + length <= body.Length, "the body ends inside a message");
            at += 5 + length;
            count++;
        }

        return count;
    }
}
