# salve-script: exchange_ioc_scan
# Look for signs of ProxyLogon exploitation, with the checks Microsoft's Test-ProxyLogon makes,
# plus web shells in the folders the attacks wrote to (contract: IocScanAnswer). Read-only.
#
#   CVE-2021-26855  HttpProxy logs: AnchorMailbox like ServerInfo~*/* (not autodiscover, not localhost)
#   CVE-2021-26857  Application log: MSExchange Unified Messaging errors with System.InvalidCastException
#   CVE-2021-26858  OABGeneratorLog: "Download failed and temporary file ... needs to be removed" outside ClientAccess\OAB
#   CVE-2021-27065  HttpProxy\Ecp: ServerInfo~*/*Reset*VirtualDirectory# with status 200;
#                   ECP\Server logs: Set-*VirtualDirectory with script tags in a URL
#   other           .aspx files in owa\auth, ecp\auth and aspnet_client (web shells); when any CVE
#                   matched, lsass dumps in C:\root and %WINDIR%\temp and archives in %ProgramData%
# Files found are answered with their SHA-256; log hits with the line. A compromised server is
# reported as such whatever its patch level: patching does not evict an attacker.

$maxEvidence = 50
$installPath = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath' -ErrorAction SilentlyContinue).MsiInstallPath
if (-not $installPath) {
    [Console]::Error.WriteLine('no Exchange 2013, 2016 or 2019 installation found (MsiInstallPath missing)')
    exit 1
}
$found = [ordered]@{}

function Add-SalveFinding([string] $Cve, [string] $Kind, [string] $Path, [string] $Sha256, [string] $Excerpt) {
    $key = "$Cve|$Kind"
    if (-not $found.Contains($key)) {
        $found[$key] = [ordered]@{ cve = $Cve; kind = $Kind; evidence = New-Object System.Collections.Generic.List[object] }
    }
    if ($found[$key].evidence.Count -lt $maxEvidence) {
        $found[$key].evidence.Add([ordered]@{ path = $Path; sha256 = $Sha256; excerpt = $Excerpt })
    }
}

function Add-SalveFileFinding([string] $Cve, [string] $Kind, [System.IO.FileInfo] $File) {
    $hash = (Get-FileHash -LiteralPath $File.FullName -Algorithm SHA256 -ErrorAction SilentlyContinue).Hash
    if ($hash) { $hash = $hash.ToLowerInvariant() }
    Add-SalveFinding $Cve $Kind $File.FullName $hash $null
}

Write-Output 'Scanning HttpProxy, OABGeneratorLog and ECP logs, the Application log and known paths...'

# CVE-2021-26855 and CVE-2021-27065 (a): HttpProxy CSV logs.
$httpProxy = Join-Path $installPath 'Logging\HttpProxy'
Get-ChildItem -LiteralPath $httpProxy -Recurse -Filter '*.log' -File -ErrorAction SilentlyContinue | ForEach-Object {
    $file = $_
    $hits = @(Select-String -LiteralPath $file.FullName -Pattern 'ServerInfo~' -SimpleMatch -ErrorAction SilentlyContinue)
    if ($hits.Count -eq 0) { return }
    $header = Select-String -LiteralPath $file.FullName -Pattern '^#Fields:' | Select-Object -First 1
    if (-not $header) { return }
    $fields = ($header.Line -replace '^#Fields:\s*', '') -split ','
    $isEcp = $file.DirectoryName -like '*\HttpProxy\Ecp*'
    foreach ($hit in $hits) {
        $row = $hit.Line | ConvertFrom-Csv -Header $fields
        $anchor = [string] $row.AnchorMailbox
        if ($anchor -like 'ServerInfo~*/*' -and $anchor -notlike 'ServerInfo~*/autodiscover*' -and $anchor -notlike 'ServerInfo~localhost*/*') {
            Add-SalveFinding 'CVE-2021-26855' 'ssrf_request' $file.FullName $null $hit.Line
        }
        if ($isEcp -and $anchor -like 'ServerInfo~*/*Reset*VirtualDirectory#' -and [string] $row.HttpStatus -eq '200') {
            Add-SalveFinding 'CVE-2021-27065' 'ecp_reset_vdir' $file.FullName $null $hit.Line
        }
    }
}

# CVE-2021-26857: Unified Messaging deserialization errors.
try {
    Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = 'MSExchange Unified Messaging'; Level = 2 } -ErrorAction Stop |
        Where-Object { $_.Message -like '*System.InvalidCastException*' } |
        ForEach-Object { Add-SalveFinding 'CVE-2021-26857' 'um_invalid_cast' $null $null ("{0:o} {1}" -f $_.TimeCreated.ToUniversalTime(), $_.Message) }
} catch {
    # "No events were found that match the specified selection criteria" (or no such provider).
}

# CVE-2021-26858: OAB generator writing temporary files outside its folder.
$oabPrefix = "'" + (Join-Path $installPath 'ClientAccess\OAB')
Get-ChildItem -LiteralPath (Join-Path $installPath 'Logging\OABGeneratorLog') -Recurse -File -ErrorAction SilentlyContinue |
    Select-String -Pattern 'Download failed and temporary file (.*?) needs to be removed' -ErrorAction SilentlyContinue |
    Where-Object { -not $_.Matches[0].Groups[1].Value.StartsWith($oabPrefix, [StringComparison]::OrdinalIgnoreCase) } |
    ForEach-Object { Add-SalveFinding 'CVE-2021-26858' 'oab_download_failed' $_.Path $null $_.Line }

# CVE-2021-27065 (b): script tags written into virtual directory URLs.
Get-ChildItem -LiteralPath (Join-Path $installPath 'Logging\ECP\Server') -Filter '*.log' -File -ErrorAction SilentlyContinue |
    Select-String -Pattern 'Set-.+VirtualDirectory.+?(?=Url).+<\w+.*>(.*?)<\/\w+>.+?(?=VirtualDirectory)' -ErrorAction SilentlyContinue |
    ForEach-Object { Add-SalveFinding 'CVE-2021-27065' 'ecp_vdir_script' $_.Path $null $_.Line }

# Web shells: .aspx files where Exchange ships none of its own under these folders' roots.
$webDirs = @(
    (Join-Path $installPath 'FrontEnd\HttpProxy\owa\auth'),
    (Join-Path $installPath 'FrontEnd\HttpProxy\ecp\auth'),
    (Join-Path $env:SystemDrive 'inetpub\wwwroot\aspnet_client')
)
$shipped = @('errorFE.aspx', 'expiredpassword.aspx', 'frowny.aspx', 'logoff.aspx', 'logon.aspx', 'OutlookCN.aspx',
    'RedirSuiteServiceProxy.aspx', 'signout.aspx', 'TimeoutLogout.aspx')
foreach ($dir in $webDirs) {
    Get-ChildItem -LiteralPath $dir -Recurse -Filter '*.aspx' -File -ErrorAction SilentlyContinue |
        Where-Object { -not ($_.DirectoryName -eq $dir -and $shipped -contains $_.Name) -and $_.DirectoryName -notmatch '\\owa\\auth\\[0-9.]+\\' } |
        ForEach-Object { Add-SalveFileFinding 'other' 'web_shell' $_ }
}

# Follow-up artefacts, looked for only once something above matched (as Test-ProxyLogon does).
if ($found.Count -gt 0) {
    foreach ($dir in @('C:\root', (Join-Path $env:WINDIR 'temp'))) {
        Get-ChildItem -LiteralPath $dir -Recurse -Filter 'lsass*dmp' -File -ErrorAction SilentlyContinue |
            ForEach-Object { Add-SalveFileFinding 'other' 'lsass_dump' $_ }
    }
    Get-ChildItem -LiteralPath $env:ProgramData -Recurse -File -Include '*.7z', '*.zip', '*.rar' -ErrorAction SilentlyContinue |
        ForEach-Object { Add-SalveFileFinding 'other' 'suspicious_archive' $_ }
}

# How far back the logs reach: days since the oldest file per folder.
$logAge = [ordered]@{}
$now = Get-Date
foreach ($folder in @('OABGeneratorLog', 'ECP\Server', 'HttpProxy\Autodiscover', 'HttpProxy\Eas', 'HttpProxy\Ecp', 'HttpProxy\Ews',
        'HttpProxy\Mapi', 'HttpProxy\Oab', 'HttpProxy\Owa', 'HttpProxy\OwaCalendar', 'HttpProxy\PowerShell', 'HttpProxy\RpcHttp')) {
    $oldest = Get-ChildItem -LiteralPath (Join-Path $installPath "Logging\$folder") -Recurse -File -ErrorAction SilentlyContinue |
        Sort-Object CreationTime | Select-Object -First 1
    if ($oldest) { $logAge[$folder] = [uint64] [math]::Floor(($now - $oldest.CreationTime).TotalDays) }
}

$findings = @($found.Values | ForEach-Object {
        [ordered]@{ cve = $_.cve; kind = $_.kind; evidence = @($_.evidence.ToArray()) }
    })
if ($findings.Count -eq 0) {
    Write-Output 'Nothing suspicious detected'
} else {
    foreach ($f in $findings) { Write-Output ("{0} {1}: {2} item(s)" -f $f.cve, $f.kind, $f.evidence.Count) }
}
$answer = [ordered]@{
    findings     = @($findings)
    log_age_days = $logAge
    compromised  = ($findings.Count -gt 0)
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
