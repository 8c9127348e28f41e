using System.Text;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Encryption;

public sealed class EncryptionApiTests
{
    private const string Key16 = "0123456789abcdef";

    private static Task<BrokerHarness> StartWithKeyAsync(string? key, bool serverDefault = false) =>
        StartAsync(o => o with { EncryptionKeySource = () => key, Streams = o.Streams with { Encryption = serverDefault } });

    [Fact]
    public async Task Behaviour28_a_20_byte_key_fails_CreateStream_with_invalid_AES_key_size()
    {
        await using var h = await StartWithKeyAsync("something-in-correct");
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition,
            () => h.CreateStreamAsync("enc", "foo", configure: r => r.Encryption = new NullableBool { Value = true }));
        Assert.Equal("Failed on preconditions for stream's encryption handler: kwp: invalid AES key size; want 16 or 32, got 20", ex.Detail); // Liftbridge's text
        await h.CreateStreamAsync("plain", "bar"); // unencrypted streams are unaffected
    }

    [Fact]
    public async Task A_missing_key_fails_CreateStream_when_the_server_default_encrypts()
    {
        await using var h = await StartWithKeyAsync(null, serverDefault: true);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.CreateStreamAsync("enc", "foo"));
        Assert.Equal("Failed on preconditions for stream's encryption handler: LIFTBRIDGE_ENCRYPTION_KEY/SLUICE_ENCRYPTION_KEY is not set", ex.Detail);
    }

    [Fact]
    public async Task Behaviour28_a_16_byte_key_gives_subscribers_plaintext_and_the_disk_only_ciphertext_across_a_restart()
    {
        await using var h = await StartWithKeyAsync(Key16, serverDefault: true);
        await h.CreateStreamAsync("enc", "foo");
        const string secret = "top-secret-value-";
        await h.PublishAsync("enc", secret + "0", key: "the-key");
        await h.PublishAsync("enc", secret + "1");
        var nullValue = await h.CallAsync("Publish", new PublishRequest { Stream = "enc", AckPolicy = AckPolicy.Leader }, PublishResponse.Parser);
        Assert.Equal(Ack.Types.Error.Ok, nullValue.Ack.AckError);

        await AssertReadableAsync(h, secret);

        var logs = Directory.GetFiles(Path.Combine(h.DataDir, "streams", "enc"), "*.log", SearchOption.AllDirectories);
        Assert.NotEmpty(logs);
        var disk = string.Concat(logs.Select(f => Encoding.Latin1.GetString(File.ReadAllBytes(f))));
        Assert.DoesNotContain("top-secret", disk, StringComparison.Ordinal);
        Assert.Contains("the-key", disk, StringComparison.Ordinal); // keys are not encrypted

        await h.RestartAsync();
        await AssertReadableAsync(h, secret);
        await using var reverse = await h.SubscribeAsync(new SubscribeRequest { Stream = "enc", Reverse = true });
        var (messages, error) = await ReadToEndAsync(reverse);
        Assert.Null(error);
        Assert.Equal([secret + "1", secret + "0"], messages.Where(m => m.Value.Length > 0).Select(m => m.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task A_value_that_cannot_be_decrypted_ends_the_subscription_with_Internal()
    {
        var key = Key16;
        await using var h = await StartAsync(o => o with { EncryptionKeySource = () => key });
        await h.CreateStreamAsync("enc", "foo", configure: r => r.Encryption = new NullableBool { Value = true });
        await h.PublishAsync("enc", "value");
        key = "fedcba9876543210"; // read once per start: the restarted broker has another master key
        await h.RestartAsync();
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "enc", StartPosition = StartPosition.Earliest });
        var (messages, error) = await ReadToEndAsync(sub);
        Assert.Empty(messages);
        Assert.NotNull(error);
        Assert.Equal(GrpcStatusCode.Internal, error.StatusCode);
        Assert.StartsWith("failed to decrypt message value at offset 0", error.Detail, StringComparison.Ordinal);
    }

    private static async Task AssertReadableAsync(BrokerHarness h, string secret)
    {
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "enc", StartPosition = StartPosition.Earliest });
        var messages = await ReadAsync(sub, 3);
        Assert.Equal(secret + "0", messages[0].Value.ToStringUtf8());
        Assert.Equal("the-key", messages[0].Key.ToStringUtf8());
        Assert.Equal(secret + "1", messages[1].Value.ToStringUtf8());
        Assert.Equal(ByteString.Empty, messages[2].Value);
    }
}
